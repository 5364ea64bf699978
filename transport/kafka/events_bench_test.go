package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventsv1 "github.com/purista-go/purista/gen/purista/testing/events/v1"
	"github.com/purista-go/purista/internal/conformance/events"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/loadtest"
	"github.com/purista-go/purista/transport/kafka"
)

// countingBilling counts the events it handles and signals when a target
// is reached.
type countingBilling struct {
	eventsv1.UnimplementedBillingServiceServer
	n      atomic.Int64
	target atomic.Int64
	done   chan struct{}
}

func (c *countingBilling) ChargeOrder(context.Context, *eventsv1.OrderPlaced) (*eventsv1.ChargeOrderResponse, error) {
	if c.n.Add(1) == c.target.Load() {
		close(c.done)
	}
	return &eventsv1.ChargeOrderResponse{}, nil
}

var eventFiguresOnce sync.Once

// BenchmarkEvents publishes a fixed number of events from 64 concurrent
// publishers (each waiting for the broker's acknowledgement) on the
// embedded broker and measures until a subscribing service (one instance)
// has handled all of them: events per second published and consumed. It
// prints the median of its rounds as figure: lines; run it with
// -benchtime=1x.
func BenchmarkEvents(b *testing.B) {
	brokers := kafkatest.Embedded(b)
	e := eventEnv{newEnv(b, brokers)}
	impl := &countingBilling{}
	srv := e.EventServer(b, events.Options{})
	eventsv1.RegisterBillingServiceServer(srv, impl)
	srv.Start(b)
	b.Cleanup(srv.Stop)
	pub := e.Publisher(b).(*kafka.ClientConn)
	e.AwaitSubscribers(b, eventsv1.BillingService_ServiceDesc.ServiceName, eventsv1.OrderPlaced_PuristaEvent.Name, 1)

	const rounds, perRound, publishers = 3, 20000, 64
	customer := strings.Repeat("c", 200)
	var consumed, published []float64
	for range b.N {
		for range rounds {
			impl.done = make(chan struct{})
			impl.target.Store(impl.n.Load() + perRound)
			work := make(chan int, perRound)
			for i := range perRound {
				work <- i
			}
			close(work)
			var wg sync.WaitGroup
			start := time.Now()
			for range publishers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					for i := range work {
						ev := &eventsv1.OrderPlaced{OrderId: fmt.Sprintf("order-%d", i%1000), Seq: int32(i), Customer: customer}
						if err := eventsv1.PublishOrderPlaced(ctx, pub, ev); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			pubTime := time.Since(start)
			select {
			case <-impl.done:
			case <-time.After(60 * time.Second):
				b.Fatalf("only %d of %d events consumed within 60s", impl.n.Load()-(impl.target.Load()-perRound), perRound)
			}
			all := time.Since(start)
			published = append(published, perRound/pubTime.Seconds())
			consumed = append(consumed, perRound/all.Seconds())
		}
	}
	b.ReportMetric(loadtest.Median(consumed), "events/s")
	b.ReportMetric(loadtest.Median(published), "published/s")
	eventFiguresOnce.Do(func() {
		fmt.Printf("figure: events_per_s %.0f\n", loadtest.Median(consumed))
		fmt.Printf("figure: events_published_per_s %.0f\n", loadtest.Median(published))
	})
}
