package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// DeadLetter is an event a subscriber kept failing, as its service's
// dead-letter topic holds it.
type DeadLetter struct {
	// Topic, Partition and Offset locate the dead letter itself.
	Topic     string
	Partition int
	Offset    int64
	// Subscriber is the full method that failed; Group its consumer group.
	Subscriber string
	Group      string
	// Event is the event's full name, EventID its id.
	Event   string
	EventID string
	// OriginalTopic, OriginalPartition and OriginalOffset locate the event
	// record the subscriber failed.
	OriginalTopic     string
	OriginalPartition int
	OriginalOffset    int64
	// Attempts is how many times the subscriber was invoked.
	Attempts int
	// Status is the last error (code, message and details).
	Status *status.Status
	// At is when the event was dead-lettered.
	At time.Time
	// RedrivenAt is when the dead letter was re-driven, zero while it is
	// pending. The dead-letter topic is a log: Redrive marks a letter with
	// a marker record after it instead of removing it.
	RedrivenAt time.Time
	// Key, Value and Headers are the record as stored: the event's key and
	// value, its headers and the dead-letter headers.
	Key     []byte
	Value   []byte
	Headers []kafka.Header
}

// ID names the dead letter by its position: "<topic>/<partition>/<offset>".
func (d DeadLetter) ID() string { return fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset) }

// ListDeadLetters reads the dead-letter topic of a subscribing service
// (after the topic prefix of opts) from its oldest retained record to its
// end, and returns the dead letters in partition and offset order: the
// pending ones and, with RedrivenAt set, those re-driven already.
func ListDeadLetters(ctx context.Context, brokers []string, service string, opts ...Option) ([]DeadLetter, error) {
	b, err := adminBase(ctx, brokers, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	return listDeadLetters(ctx, b, b.deadLetterTopic(service), service)
}

// listDeadLetters reads a dead-letter topic whole and applies its re-drive
// markers to the letters they name.
func listDeadLetters(ctx context.Context, b *base, topic, service string) ([]DeadLetter, error) {
	parts, err := b.prod.partitions(ctx, topic, true)
	if err != nil {
		var missing errTopicMissing
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("kafka: dead-letter topic %s does not exist: %s has no subscriptions here, or its topics were never provisioned", topic, service)
		}
		return nil, fmt.Errorf("kafka: read metadata of %s: %w", topic, err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range parts {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	offs, err := b.kc.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka: list offsets of %s: %w", topic, err)
	}
	var out []DeadLetter
	redriven := map[string]time.Time{}
	for _, po := range offs.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafka: list offsets of %s partition %d: %w", topic, po.Partition, po.Error)
		}
		if po.LastOffset <= po.FirstOffset {
			continue
		}
		letters, err := readPartition(ctx, b, topic, po.Partition, po.FirstOffset, po.LastOffset, redriven)
		if err != nil {
			return nil, err
		}
		out = append(out, letters...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	for i := range out {
		out[i].RedrivenAt = redriven[out[i].ID()]
	}
	return out, nil
}

// readPartition reads the records of [first, end) of one partition: the
// dead letters it returns, and the re-drive markers it adds to redriven.
func readPartition(ctx context.Context, b *base, topic string, partition int, first, end int64, redriven map[string]time.Time) ([]DeadLetter, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   b.brokers,
		Topic:     topic,
		Partition: partition,
		Dialer:    b.dialer,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   200 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, err
	}
	var out []DeadLetter
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("kafka: read %s partition %d: %w", topic, partition, err)
		}
		if id, ok := headerValue(m.Headers, hdrRedriven); ok {
			redriven[id] = m.Time
		} else {
			out = append(out, decodeDeadLetter(m))
		}
		if m.Offset >= end-1 {
			return out, nil
		}
	}
}

func decodeDeadLetter(m kafka.Message) DeadLetter {
	d := DeadLetter{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Headers: m.Headers}
	code, msg := codes.Unknown, ""
	var stBin []byte
	for _, h := range m.Headers {
		v := string(h.Value)
		switch h.Key {
		case hdrDeadLetterSubscriber:
			d.Subscriber = v
		case hdrDeadLetterGroup:
			d.Group = v
		case hdrEvent:
			d.Event = v
		case hdrID:
			d.EventID = v
		case hdrDeadLetterTopic:
			d.OriginalTopic = v
		case hdrDeadLetterPartition:
			d.OriginalPartition, _ = strconv.Atoi(v)
		case hdrDeadLetterOffset:
			d.OriginalOffset, _ = strconv.ParseInt(v, 10, 64)
		case hdrDeadLetterAttempts:
			d.Attempts, _ = strconv.Atoi(v)
		case hdrDeadLetterStatus:
			if n, err := strconv.Atoi(v); err == nil {
				code = codes.Code(n)
			}
		case hdrDeadLetterReason:
			msg = v
		case hdrDeadLetterStatusBin:
			stBin = h.Value
		case hdrDeadLetterTime:
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.At = time.UnixMilli(ms)
			}
		}
	}
	d.Status = status.New(code, msg)
	if len(stBin) > 0 {
		var sp spb.Status
		if err := proto.Unmarshal(stBin, &sp); err == nil {
			d.Status = status.FromProto(&sp)
		}
	}
	return d
}

// Redrive writes each dead letter back to the partition of the topic it
// came from, with its key, value and event headers, addressed to the
// subscriber that failed it: only that subscriber handles it again, with
// fresh attempts; other subscribing services skip it. A marker record after
// each re-driven letter in its dead-letter topic sets its RedrivenAt, and
// letters re-driven already (by this call or an earlier one, as the topic
// says when Redrive starts) are skipped, so that an event is not delivered
// twice. It returns how many it re-drove.
func Redrive(ctx context.Context, brokers []string, letters []DeadLetter, opts ...Option) (int, error) {
	b, err := adminBase(ctx, brokers, opts)
	if err != nil {
		return 0, err
	}
	defer b.close()
	done := map[string]bool{}
	read := map[string]bool{}
	n := 0
	for _, d := range letters {
		if d.Subscriber == "" || d.OriginalTopic == "" {
			return n, fmt.Errorf("kafka: dead letter %s has no %s or %s header: it was not written by a purista subscription", d.ID(), hdrDeadLetterSubscriber, hdrDeadLetterTopic)
		}
		if !read[d.Topic] {
			// The topic's markers as they are now, not as the caller listed them.
			read[d.Topic] = true
			current, err := listDeadLetters(ctx, b, d.Topic, strings.TrimPrefix(d.Topic, b.deadLetterTopic("")))
			if err != nil {
				return n, err
			}
			for _, c := range current {
				if !c.RedrivenAt.IsZero() {
					done[c.ID()] = true
				}
			}
		}
		if done[d.ID()] {
			continue
		}
		if err := redriveOne(ctx, b, d); err != nil {
			return n, err
		}
		done[d.ID()] = true
		n++
		marker := kafka.Message{Headers: []kafka.Header{
			{Key: hdrVersion, Value: []byte(protocolVersion)},
			{Key: hdrRedriven, Value: []byte(d.ID())},
		}}
		if err := b.prod.send(ctx, d.Topic, d.Partition, marker); err != nil {
			return n, fmt.Errorf("kafka: re-drove %s but could not mark it re-driven in %s, so it is still listed as pending: do not re-drive it again: %w", d.ID(), d.Topic, err)
		}
	}
	return n, nil
}

// redriveOne writes dead letter d back to its original topic.
func redriveOne(ctx context.Context, b *base, d DeadLetter) error {
	headers := make([]kafka.Header, 0, len(d.Headers)+2)
	for _, h := range d.Headers {
		if strings.HasPrefix(h.Key, hdrDeadLetterPrefix) || h.Key == hdrRedriveFor || h.Key == hdrRedriveOf {
			continue
		}
		headers = append(headers, h)
	}
	headers = append(headers,
		kafka.Header{Key: hdrRedriveFor, Value: []byte(d.Subscriber)},
		kafka.Header{Key: hdrRedriveOf, Value: []byte(d.ID())},
	)
	rec := kafka.Message{Key: d.Key, Value: d.Value, Headers: headers}
	parts, err := b.prod.partitions(ctx, d.OriginalTopic, false)
	if err != nil {
		return fmt.Errorf("kafka: re-drive %s to %s: %w", d.ID(), d.OriginalTopic, err)
	}
	part := -1
	for _, p := range parts {
		if p == d.OriginalPartition {
			part = p
		}
	}
	if part < 0 {
		part, err = b.prod.pickPartition(ctx, d.OriginalTopic, d.Key)
	}
	if err == nil {
		err = b.prod.send(ctx, d.OriginalTopic, part, rec)
	}
	if err != nil {
		return fmt.Errorf("kafka: re-drive %s to %s: %w", d.ID(), d.OriginalTopic, err)
	}
	return nil
}
