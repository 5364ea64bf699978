package cluster

// This file: what the brokers say — readiness, leaders, in-sync replicas,
// topics.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// WaitReady waits until every node that was started (and not stopped or
// killed since; frozen ones included, so Thaw them first) answers
// ApiVersions and Metadata on its own listener, and each one's metadata
// lists all of them as live brokers. It fails at once
// when a node's process has exited without being told to, or when no node
// is running.
func (c *Cluster) WaitReady(ctx context.Context) error {
	err := poll(ctx, 100*time.Millisecond, func() error { return c.ready(ctx) })
	if err != nil {
		return fmt.Errorf("cluster: nodes not ready: %w; logs in %s", err, c.cfg.Dir)
	}
	return nil
}

// poll calls try until it returns nil or a *finalError, or ctx ends; the
// error then names the last failure, which says more than "deadline
// exceeded".
func poll(ctx context.Context, every time.Duration, try func() error) error {
	for {
		err := try()
		if err == nil {
			return nil
		}
		var final *finalError
		if errors.As(err, &final) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%v (last: %w)", ctx.Err(), err)
		case <-time.After(every):
		}
	}
}

// finalError is a readiness failure that waiting cannot cure.
type finalError struct{ msg string }

func (e *finalError) Error() string { return e.msg }

func (c *Cluster) ready(ctx context.Context) error {
	var want []int
	for i, nd := range c.nodes {
		nd.mu.Lock()
		p := nd.proc
		nd.mu.Unlock()
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			if !p.expected.Load() {
				return &finalError{fmt.Sprintf("cluster: node %d exited by itself (%v); broker log %s ends:\n%s", i, p.err, c.LogFile(i), nodeTail(nd.dir, i, 15))}
			}
			continue
		default:
		}
		want = append(want, i+1)
	}
	if len(want) == 0 {
		return &finalError{"cluster: no node is running (StartNode starts one)"}
	}
	for _, id := range want {
		conn, err := c.dialNode(ctx, id-1)
		if err != nil {
			return err
		}
		_, err = conn.ApiVersions()
		var brokers []kafka.Broker
		if err == nil {
			brokers, err = conn.Brokers()
		}
		conn.Close()
		if err != nil {
			return fmt.Errorf("node %d: %w", id-1, err)
		}
		live := map[int]bool{}
		for _, b := range brokers {
			live[b.ID] = true
		}
		for _, w := range want {
			if !live[w] {
				return fmt.Errorf("node %d's metadata does not list node %d yet", id-1, w-1)
			}
		}
	}
	return nil
}

// dialNode connects to node i's own CLIENT listener (not its proxy: a
// paused proxy must not make the harness think the broker is down).
func (c *Cluster) dialNode(ctx context.Context, i int) (*kafka.Conn, error) {
	d := c.dialer(2 * time.Second)
	conn, err := d.DialContext(ctx, "tcp", c.DirectAddr(i))
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", i, err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn, nil
}

func (c *Cluster) warmGroups(ctx context.Context) error {
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 5 * time.Second, Transport: c.transport()}
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	err := poll(ctx, 200*time.Millisecond, func() error {
		fc, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: "purista-warmup", KeyType: kafka.CoordinatorKeyTypeConsumer})
		if err == nil {
			err = fc.Error
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: no group coordinator: %w", err)
	}
	return nil
}

// LeaderOf returns the index of the node leading topic's partition, as the
// first running node that answers sees it. Right after a Kill the answer is
// still the dead node until the controller fences it; [Cluster.WaitLeader]
// waits for a change.
func (c *Cluster) LeaderOf(ctx context.Context, topic string, partition int) (int, error) {
	p, err := c.partition(ctx, topic, partition)
	if err != nil {
		return -1, err
	}
	if p.Leader.ID <= 0 {
		return -1, fmt.Errorf("cluster: %s/%d has no leader", topic, partition)
	}
	return p.Leader.ID - 1, nil
}

// WaitLeader waits until topic's partition has a leader other than node
// not (-1: any leader) and returns its index.
func (c *Cluster) WaitLeader(ctx context.Context, topic string, partition, not int) (int, error) {
	leader := -1
	err := poll(ctx, 50*time.Millisecond, func() error {
		l, err := c.LeaderOf(ctx, topic, partition)
		if err == nil && l == not {
			err = fmt.Errorf("leader is still node %d", l)
		}
		leader = l
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("cluster: %s/%d: no new leader: %w", topic, partition, err)
	}
	return leader, nil
}

// CoordinatorOf returns the index of the node coordinating consumer group
// group: the leader of its __consumer_offsets partition, the node to take
// away to make a group move.
func (c *Cluster) CoordinatorOf(ctx context.Context, group string) (int, error) {
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 5 * time.Second, Transport: c.transport()}
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	fc, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err == nil {
		err = fc.Error
	}
	if err != nil {
		return -1, fmt.Errorf("cluster: coordinator of group %s: %w", group, err)
	}
	return fc.Coordinator.NodeID - 1, nil
}

// InSync returns the node indexes in the in-sync replica set of topic's
// partition.
func (c *Cluster) InSync(ctx context.Context, topic string, partition int) ([]int, error) {
	p, err := c.partition(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, b := range p.Isr {
		out = append(out, b.ID-1)
	}
	sort.Ints(out)
	return out, nil
}

// WaitInSync waits until every running node's metadata shows every
// partition of topic with a leader and all its replicas in sync, for
// example before a test takes the next broker away. Each node learns
// metadata on its own: a topic one node knows may be unknown to the next
// for a moment, and kafka-go's Writer fails rather than retries then.
func (c *Cluster) WaitInSync(ctx context.Context, topic string) error {
	if err := poll(ctx, 100*time.Millisecond, func() error { return c.allInSync(ctx, topic) }); err != nil {
		return fmt.Errorf("cluster: %s not in sync: %w", topic, err)
	}
	return nil
}

func (c *Cluster) allInSync(ctx context.Context, topic string) error {
	asked := 0
	for _, i := range c.answering() {
		parts, err := c.partitionsFrom(ctx, i, topic)
		if err != nil {
			return err
		}
		if len(parts) == 0 {
			return fmt.Errorf("node %d does not know %s yet", i, topic)
		}
		for _, p := range parts {
			if p.Leader.ID <= 0 || len(p.Isr) != len(p.Replicas) {
				return fmt.Errorf("node %d: partition %d: leader %d, %d of %d replicas in sync", i, p.ID, p.Leader.ID-1, len(p.Isr), len(p.Replicas))
			}
		}
		asked++
	}
	if asked == 0 {
		return errors.New("no node is running")
	}
	return nil
}

// answering returns the nodes that are running and not frozen.
func (c *Cluster) answering() []int {
	var out []int
	for i, nd := range c.nodes {
		nd.mu.Lock()
		frozen := nd.frozen
		nd.mu.Unlock()
		if !frozen && c.Running(i) {
			out = append(out, i)
		}
	}
	return out
}

func (c *Cluster) partition(ctx context.Context, topic string, partition int) (kafka.Partition, error) {
	parts, err := c.partitions(ctx, topic)
	if err != nil {
		return kafka.Partition{}, err
	}
	for _, p := range parts {
		if p.ID == partition {
			return p, nil
		}
	}
	return kafka.Partition{}, fmt.Errorf("cluster: %s has no partition %d", topic, partition)
}

// partitions reads topic's partitions from the first answering node.
func (c *Cluster) partitions(ctx context.Context, topic string) ([]kafka.Partition, error) {
	var errs []error
	for _, i := range c.answering() {
		parts, err := c.partitionsFrom(ctx, i, topic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return parts, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("cluster: no node is running")
	}
	return nil, fmt.Errorf("cluster: metadata of %s: %w", topic, errors.Join(errs...))
}

func (c *Cluster) partitionsFrom(ctx context.Context, i int, topic string) ([]kafka.Partition, error) {
	conn, err := c.dialNode(ctx, i)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", i, err)
	}
	return parts, nil
}

// CreateTopic creates a topic with the cluster's replication (3, or 1 on a
// one-node cluster) and waits until every node knows it with a leader and
// all replicas in sync ([Cluster.WaitInSync]).
func (c *Cluster) CreateTopic(ctx context.Context, name string, partitions int) error {
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 10 * time.Second, Transport: c.transport()}
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: len(c.nodes)}},
	})
	if err == nil {
		err = resp.Errors[name]
	}
	if err != nil {
		return fmt.Errorf("cluster: create topic %s: %w", name, err)
	}
	return c.WaitInSync(ctx, name)
}
