// Command kafkaready supports scripts/kafka.sh: it hands out free loopback
// ports and waits until a Kafka broker answers metadata requests.
//
//	kafkaready -ports 2                      print two free 127.0.0.1 ports
//	kafkaready -brokers 127.0.0.1:9092 \
//	           -timeout 90s -pid 1234        wait for the broker (or for pid to die)
//
// Waiting also warms the group coordinator: the first FindCoordinator on a
// fresh broker creates the __consumer_offsets topic, and kafka-go backs off
// for seconds while that happens. Doing it here keeps the delay out of the
// first test that joins a consumer group.
//
// It exits 0 when the broker is ready, 1 on timeout or when the process
// given by -pid is gone, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	ports := flag.Int("ports", 0, "print this many free 127.0.0.1 ports and exit")
	brokers := flag.String("brokers", "", "comma-separated bootstrap addresses to wait for")
	timeout := flag.Duration("timeout", 90*time.Second, "give up after this long")
	pid := flag.Int("pid", 0, "stop waiting when this process has exited")
	flag.Parse()

	switch {
	case *ports > 0:
		if err := printPorts(*ports); err != nil {
			fmt.Fprintln(os.Stderr, "kafkaready:", err)
			os.Exit(1)
		}
	case *brokers != "":
		if err := wait(strings.Split(*brokers, ","), *timeout, *pid); err != nil {
			fmt.Fprintln(os.Stderr, "kafkaready:", err)
			os.Exit(1)
		}
	default:
		flag.Usage()
		os.Exit(2)
	}
}

func printPorts(n int) error {
	var out []string
	// Keep every listener open until all are chosen so the ports differ.
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		out = append(out, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

func wait(addrs []string, timeout time.Duration, pid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 2 * time.Second}
	var last error
	for {
		if pid > 0 && syscall.Kill(pid, 0) != nil {
			return fmt.Errorf("broker process %d exited before it answered metadata requests (last error: %v)", pid, last)
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		meta, err := client.Metadata(attempt, &kafka.MetadataRequest{})
		cancelAttempt()
		switch {
		case err != nil:
			last = err
		case len(meta.Brokers) == 0:
			last = errors.New("metadata lists no brokers yet")
		default:
			attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
			fc, err := client.FindCoordinator(attempt, &kafka.FindCoordinatorRequest{Key: "purista-warmup", KeyType: kafka.CoordinatorKeyTypeConsumer})
			cancelAttempt()
			switch {
			case err != nil:
				last = fmt.Errorf("find group coordinator: %w", err)
			case fc.Error != nil:
				last = fmt.Errorf("find group coordinator: %w", fc.Error)
			default:
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no metadata answer from %s within %v (last error: %v)", strings.Join(addrs, ","), timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
