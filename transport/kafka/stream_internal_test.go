package kafka

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
)

// Lost, reordered or excess stream records end the stream with DATA_LOSS
// instead of silently missing data.
func TestStreamGapsAreDataLoss(t *testing.T) {
	msg := func(id string, seq int) kafka.Message {
		b, _ := proto.Marshal(wrapperspb.Int32(int32(seq)))
		return kafka.Message{Value: b, Headers: []kafka.Header{
			{Key: hdrCorrelationID, Value: []byte(id)},
			{Key: hdrStreamSeq, Value: []byte(strconv.Itoa(seq))},
		}}
	}
	final := func(id string, seq int) kafka.Message {
		m := msg(id, seq)
		m.Value = nil
		m.Headers = append(m.Headers, kafka.Header{Key: hdrStatus, Value: []byte("0")})
		return m
	}
	cases := []struct {
		name string
		recs func(id string) []kafka.Message
		ok   int
		want string
	}{
		{"complete", func(id string) []kafka.Message { return []kafka.Message{msg(id, 1), msg(id, 2), final(id, 3)} }, 2, ""},
		{"lost record", func(id string) []kafka.Message { return []kafka.Message{msg(id, 1), msg(id, 3)} }, 1, "record 3 arrived where 2 was expected"},
		{"lost tail", func(id string) []kafka.Message { return []kafka.Message{msg(id, 1), final(id, 3)} }, 1, "record 3 arrived where 2 was expected"},
		{"reordered", func(id string) []kafka.Message { return []kafka.Message{msg(id, 2), msg(id, 1)} }, 0, "record 2 arrived where 1 was expected"},
		{"no sequence number", func(id string) []kafka.Message {
			m := msg(id, 1)
			m.Headers = m.Headers[:1]
			return []kafka.Message{m}
		}, 0, "record -1 arrived where 1 was expected"},
		{"beyond the window", func(id string) []kafka.Message {
			var out []kafka.Message
			for i := 1; i <= defaultStreamWindow+3; i++ {
				out = append(out, msg(id, i))
			}
			return out
		}, defaultStreamWindow + 1, "exceeded the flow-control window"},
	}
	late := map[string]func(id string) kafka.Message{
		"beyond the window": func(id string) kafka.Message { return final(id, defaultStreamWindow+4) },
	}
	contracts, err := dispatch.NewContracts("test", []*purista.Service{{Name: "p.v1.S"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &ClientConn{base: &base{contracts: contracts}, done: make(chan struct{})}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := c.newStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/p.v1.S/M")
			if err != nil {
				t.Fatal(err)
			}
			cs := st.(*clientStream)
			for _, r := range tc.recs(cs.id) {
				if !c.deliverStream(cs.id, r) {
					t.Fatal("record not delivered to its stream")
				}
			}
			for i := range tc.ok {
				var got wrapperspb.Int32Value
				if err := cs.RecvMsg(&got); err != nil || got.GetValue() != int32(i+1) {
					t.Fatalf("message %d: %v, %v", i+1, got.GetValue(), err)
				}
			}
			if l := late[tc.name]; l != nil {
				c.deliverStream(cs.id, l(cs.id))
			}
			err = cs.RecvMsg(&wrapperspb.Int32Value{})
			if tc.want == "" {
				if err.Error() != "EOF" {
					t.Fatalf("end: %v, want EOF", err)
				}
				return
			}
			if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("end: %v, want DATA_LOSS with %q", err, tc.want)
			}
			if again := cs.RecvMsg(&wrapperspb.Int32Value{}); again != err {
				t.Errorf("RecvMsg after the end = %v, want the same error", again)
			}
		})
	}
}
