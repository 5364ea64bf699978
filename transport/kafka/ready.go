package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// readyTimeout bounds each broker round trip of a readiness check, so a
// broker that went away turns the probe to "not ready" within a second
// instead of after the dial timeout.
const readyTimeout = time.Second

// leadersReady reports whether a produce to every partition of topics, and
// a fetch from it, would be answered now: a broker answers, metadata names
// a leader for every partition, and every such leader accepts a connection
// and answers. Each missing topic is named in the error.
func leadersReady(ctx context.Context, b *base, topics []string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*readyTimeout)
	defer cancel()
	if err := b.pingWithin(ctx, readyTimeout); err != nil {
		return err
	}
	leaders := map[string]bool{}
	var missing, leaderless []string
	for _, t := range topics {
		parts, err := b.prod.lookup(ctx, t)
		var m errTopicMissing
		switch {
		case errors.As(err, &m):
			missing = append(missing, t)
			continue
		case err != nil:
			return fmt.Errorf("kafka: read metadata of topic %s: %w", t, err)
		}
		for _, p := range parts {
			if p.Leader.Host == "" || p.Leader.ID < 0 {
				leaderless = append(leaderless, fmt.Sprintf("%s/%d", t, p.ID))
				continue
			}
			leaders[net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))] = true
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka: topics missing: %s: provision them with `purista topics ensure`", strings.Join(missing, ", "))
	}
	if len(leaderless) > 0 {
		return fmt.Errorf("kafka: partitions without a leader (a broker is down or an election is under way): %s", strings.Join(leaderless, ", "))
	}
	for addr := range leaders {
		if err := b.pingAddr(ctx, addr, readyTimeout); err != nil {
			return fmt.Errorf("kafka: partition leader %s does not answer: %w", addr, err)
		}
	}
	return nil
}

// pingWithin checks that a broker answers, each try bounded by d.
func (b *base) pingWithin(ctx context.Context, d time.Duration) error {
	var err error
	// Every configured broker may be asked: one that is down must not make
	// the cluster look unreachable while another answers.
	for range b.brokers {
		if err = b.pingAddr(ctx, b.prod.broker(), d); err == nil {
			return nil
		}
	}
	return fmt.Errorf("kafka: cannot reach brokers %s: %w: check the addresses, that a broker is running, and the TLS/SASL settings", strings.Join(b.brokers, ","), err)
}

// pingAddr dials addr and asks for its API versions.
func (b *base) pingAddr(ctx context.Context, addr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	conn, err := b.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(d))
	_, err = conn.ApiVersions()
	return err
}

// membership follows a group reader's membership in its consumer group
// from kafka-go's log lines, the only place it reports them: a generation
// starts with "subscribed to topics and partitions" and ends with its
// heartbeat loop ("stopped heartbeat"), which also ends when a heartbeat
// fails because the coordinator went away. TestReadinessFollowsTheBroker
// fails if a kafka-go upgrade changes these lines.
type membership struct {
	group  string
	joined atomic.Bool
	// owned is the partitions the reader was last assigned, which the
	// sticky balancer tells the group's leader.
	owned atomic.Pointer[[]int]
	// member is the member id the reader last joined under; removing
	// holds the ids being removed (see removeStaleMember).
	member   atomic.Value // string
	removing sync.Map
}

// lastMember returns the member id the reader last joined under.
func (m *membership) lastMember() string {
	id, _ := m.member.Load().(string)
	return id
}

// ownedPartitions returns the partitions the reader was last assigned.
func (m *membership) ownedPartitions() []int {
	if p := m.owned.Load(); p != nil {
		return *p
	}
	return nil
}

// observe reads one kafka-go log line (format and arguments).
func (m *membership) observe(msg string, args ...any) {
	switch {
	case strings.HasPrefix(msg, "subscribed to topics and partitions"):
		owned := ownedFromLog(fmt.Sprintf(msg, args...))
		m.owned.Store(&owned)
		m.joined.Store(true)
	case strings.HasPrefix(msg, "stopped heartbeat for group"),
		strings.HasPrefix(msg, "Failed to join group"),
		strings.HasPrefix(msg, "Unable to establish connection to consumer group coordinator"):
		m.joined.Store(false)
	}
}

// memberships are the group readers of a server.
type memberships struct {
	mu  sync.Mutex
	all []*membership
}

func (ms *memberships) add(group string) *membership {
	m := &membership{group: group}
	ms.mu.Lock()
	ms.all = append(ms.all, m)
	ms.mu.Unlock()
	return m
}

// check names the groups this process is not a member of now.
func (ms *memberships) check() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var out []string
	for _, m := range ms.all {
		if !m.joined.Load() {
			out = append(out, m.group)
		}
	}
	if len(out) > 0 {
		return fmt.Errorf("kafka: not a member of consumer groups %s yet (joining, or the group coordinator is unreachable)", strings.Join(out, ", "))
	}
	return nil
}

// readerLoggers returns the Logger and ErrorLogger of a group reader: both
// feed its membership; errors are logged at debug level.
func (s *Server) readerLoggers(m *membership) (kafka.Logger, kafka.Logger) {
	debug := s.cfg.logger.Enabled(context.Background(), slog.LevelDebug)
	info := kafka.LoggerFunc(func(msg string, args ...any) {
		m.observe(msg, args...)
		if debug && groupLine(msg) {
			s.cfg.logger.Debug("kafka-go: " + strings.TrimSpace(fmt.Sprintf(msg, args...)))
		}
		switch {
		case strings.HasPrefix(msg, "Joined group") && len(args) >= 2:
			if member, ok := args[1].(string); ok {
				m.member.Store(member)
			}
		case strings.HasPrefix(msg, "Leaving group") && len(args) == 2:
			if member, ok := args[1].(string); ok {
				s.removeStale(m, member)
			}
		}
	})
	errs := kafka.LoggerFunc(func(msg string, args ...any) {
		m.observe(msg, args...)
		if err := errorArg(args); err != nil && denied(err) {
			// Joining again cannot help: stop, saying why.
			s.fail(s.cfg.groupDenied(m.group, err))
		}
		if strings.HasPrefix(msg, "Failed to join group") {
			// kafka-go drops the member id after a failed join (a
			// coordinator still loading the group after it moved)
			// without leaving: the id stays in the group until its
			// session times out, and holds the next rebalance.
			if member := m.lastMember(); member != "" {
				s.removeStale(m, member)
			}
		}
		s.cfg.logger.Debug("kafka-go: " + fmt.Sprintf(msg, args...))
	})
	return info, errs
}

// groupLine reports whether a kafka-go log line is about group membership
// (joining, leaving, assignments): worth a debug line, unlike the fetch
// chatter.
func groupLine(msg string) bool {
	for _, p := range []string{"Joined group", "Leaving group", "subscribed to topics", "stopped heartbeat", "selected as leader", "Failed to", "Unable to"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// removeStale starts removing member from m's group, once per member id.
func (s *Server) removeStale(m *membership, member string) {
	if _, busy := m.removing.LoadOrStore(member, true); busy {
		return
	}
	go s.removeStaleMember(m.group, member)
}

// staleMemberPatience bounds how long a server tries to remove a member id
// it left behind: past the session timeout the broker has removed it.
const staleMemberPatience = 2 * time.Minute

// removeStaleMember makes sure member leaves group. kafka-go leaves the
// group and joins again under a new member id whenever a generation ends
// with an error; when the coordinator was unreachable (a broker restart)
// that leave fails, the old id stays in the group, and the broker holds the
// next rebalance until the old id's session times out (6 s or more):
// meanwhile nobody reads the group's partitions. Sending the leave again
// once the coordinator answers lets the rebalance finish at once. It waits
// staleMemberDelay after the coordinator first answers, so that the other
// instances, which lost the broker at the same moment and retry their
// join every 200 ms (JoinGroupBackoff), have joined again too: the rebalance then ends with every instance in the group and the
// sticky balancer leaves each partition with its owner, instead of a
// rebalance with the first instance back owning everything. Repeating a
// leave that succeeded is harmless: the broker answers UNKNOWN_MEMBER_ID.
func (s *Server) removeStaleMember(group, member string) {
	ctx := s.fetchCtx
	if ctx.Err() != nil {
		return // stopping: kafka-go's own leave is the one that counts
	}
	pause := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	give := time.Now().Add(staleMemberPatience)
	for {
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		resp, err := s.kc.DescribeGroups(rctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		cancel()
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].Error == nil {
			break
		}
		if time.Now().After(give) || !pause(200*time.Millisecond) {
			return
		}
	}
	if !pause(staleMemberDelay) {
		return
	}
	for time.Now().Before(give) {
		rctx, cancel := context.WithTimeout(ctx, readyTimeout)
		resp, err := s.kc.LeaveGroup(rctx, &kafka.LeaveGroupRequest{GroupID: group, Members: []kafka.LeaveGroupRequestMember{{ID: member}}})
		cancel()
		if err == nil {
			err = resp.Error
			for _, mr := range resp.Members {
				if err == nil {
					err = mr.Error
				}
			}
		}
		if err == nil || errors.Is(err, kafka.UnknownMemberId) {
			return
		}
		if !pause(200 * time.Millisecond) {
			return
		}
	}
}

// staleMemberDelay is how long a server waits, once the coordinator is
// back, before it removes its member id left behind; see removeStaleMember.
const staleMemberDelay = 300 * time.Millisecond
