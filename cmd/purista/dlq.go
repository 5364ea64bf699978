package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista/transport/kafka"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and re-drive the dead letters of a subscribing service",
		Long: `A subscriber that keeps failing an event (after its retries) writes the event
to its service's dead-letter topic, purista.dlq.<service>, with the error
and the number of attempts, and goes on with the next events. "dlq list"
shows them; "dlq redrive" sends chosen ones back to the subscriber that
failed them (and to no other service), once the cause is fixed.`,
	}
	var kf kafkaFlags
	var cf contractFlags
	var asJSON, listAll bool
	list := &cobra.Command{
		Use:   "list [<service>]",
		Short: "List the pending dead letters of a service (e.g. shop.v1.BillingService), or of every subscriber of your contracts",
		Long: `list prints the dead letters of a service that wait for a re-drive; with --all
also those re-driven already, with the time of their re-drive. Without a
service it lists those of every service of your contracts that subscribes
to events (the contracts: the buf module here, --contracts DIR, the one
purista.yaml names, or --image).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			services := args
			if len(services) == 0 {
				var err error
				if services, err = subscribers(cmdContext(cmd), cf); err != nil {
					return err
				}
			}
			var letters []kafka.DeadLetter
			for _, s := range services {
				l, err := listDeadLetters(cmdContext(cmd), &kf, s)
				if err != nil {
					return err
				}
				letters = append(letters, l...)
			}
			hidden := 0
			if !listAll {
				letters, hidden = pendingOnly(letters)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				for _, l := range letters {
					if err := enc.Encode(deadLetterJSON(l)); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			head := "ID\tEVENT\tEVENT ID\tSUBSCRIBER\tATTEMPTS\tSTATUS\tDEAD-LETTERED"
			if listAll {
				head += "\tRE-DRIVEN"
			}
			fmt.Fprintln(tw, head)
			for _, l := range letters {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s: %s\t%s", l.ID(), l.Event, l.EventID, l.Subscriber, l.Attempts,
					l.Status.Code(), oneLine(l.Status.Message()), l.At.Format(time.RFC3339))
				if listAll {
					redriven := "-"
					if !l.RedrivenAt.IsZero() {
						redriven = l.RedrivenAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "\t%s", redriven)
				}
				fmt.Fprintln(tw)
			}
			_ = tw.Flush()
			if hidden > 0 {
				fmt.Fprintf(out, "%d pending dead letters (%d re-driven not shown: --all shows them)\n", len(letters), hidden)
			} else {
				fmt.Fprintf(out, "%d dead letters\n", len(letters))
			}
			return nil
		},
	}
	kf.add(list.Flags())
	cf.add(list.Flags())
	list.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per dead letter")
	list.Flags().BoolVar(&listAll, "all", false, "also list the dead letters re-driven already")

	var rkf kafkaFlags
	var all bool
	redrive := &cobra.Command{
		Use:   "redrive <service> [<id>...]",
		Short: "Send dead letters back to the subscriber that failed them",
		Long: `redrive writes the chosen dead letters (IDs as "dlq list" prints them, or
--all) back to their original topic and partition. Only the subscriber that
failed an event handles it again, with fresh attempts; other subscribing
services skip it. The dead letters stay in the topic (it is a log), marked
re-driven: they are not re-driven twice. An event that fails again becomes
a new dead letter.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service, ids := args[0], args[1:]
			if all == (len(ids) > 0) {
				return usageError{errors.New("name the dead letters to re-drive by ID, or pass --all")}
			}
			letters, err := listDeadLetters(cmdContext(cmd), &rkf, service)
			if err != nil {
				return err
			}
			chosen, _ := pendingOnly(letters)
			if !all {
				byID := map[string]kafka.DeadLetter{}
				for _, l := range letters {
					byID[l.ID()] = l
				}
				chosen = nil
				for _, id := range ids {
					l, ok := byID[id]
					if !ok {
						return usageError{fmt.Errorf("no dead letter %s in the dead-letter topic of %s (see purista dlq list %s)", id, service, service)}
					}
					if !l.RedrivenAt.IsZero() {
						return fmt.Errorf("dead letter %s was re-driven already, at %s: if it failed again it is a new dead letter (see purista dlq list %s)", id, l.RedrivenAt.Format(time.RFC3339), service)
					}
					chosen = append(chosen, l)
				}
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd), rkf.timeout+30*time.Second)
			defer cancel()
			n, err := kafka.Redrive(ctx, rkf.list(), chosen, append(rkf.options(), kafka.WithLogger(discardLogger()))...)
			out := cmd.OutOrStdout()
			if n == len(chosen) {
				for _, l := range chosen {
					fmt.Fprintf(out, "re-drove %s (event %s %s) to %s for %s\n", l.ID(), l.Event, l.EventID, l.OriginalTopic, l.Subscriber)
				}
			}
			if err != nil {
				return err
			}
			if n < len(chosen) {
				fmt.Fprintf(out, "%d of %d dead letters re-driven: the others were re-driven meanwhile by someone else (see purista dlq list --all %s)\n", n, len(chosen), service)
				return nil
			}
			fmt.Fprintf(out, "%d dead letters re-driven\n", n)
			return nil
		},
	}
	rkf.add(redrive.Flags())
	redrive.Flags().BoolVar(&all, "all", false, "re-drive every dead letter of the service")
	cmd.AddCommand(list, redrive)
	return cmd
}

// subscribers returns the services of the contracts that subscribe to
// events: those that have dead-letter topics.
func subscribers(ctx context.Context, cf contractFlags) ([]string, error) {
	c, err := cf.load(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range c.services {
		for _, m := range s.Methods {
			if m.Subscribe != nil {
				out = append(out, s.Name)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no service in %s subscribes to an event, so none has dead letters", c.source)
	}
	return out, nil
}

func listDeadLetters(ctx context.Context, kf *kafkaFlags, service string) ([]kafka.DeadLetter, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	brokers, err := kf.reach(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, kf.timeout+30*time.Second)
	defer cancel()
	return kafka.ListDeadLetters(ctx, brokers, service, append(kf.options(), kafka.WithLogger(discardLogger()))...)
}

// pendingOnly returns the letters not re-driven yet, and how many it left out.
func pendingOnly(letters []kafka.DeadLetter) ([]kafka.DeadLetter, int) {
	var pending []kafka.DeadLetter
	for _, l := range letters {
		if l.RedrivenAt.IsZero() {
			pending = append(pending, l)
		}
	}
	return pending, len(letters) - len(pending)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

type deadLetterOut struct {
	ID                string     `json:"id"`
	Event             string     `json:"event"`
	EventID           string     `json:"event_id"`
	Subscriber        string     `json:"subscriber"`
	Group             string     `json:"group"`
	Attempts          int        `json:"attempts"`
	Code              string     `json:"code"`
	Message           string     `json:"message"`
	OriginalTopic     string     `json:"original_topic"`
	OriginalPartition int        `json:"original_partition"`
	OriginalOffset    int64      `json:"original_offset"`
	At                time.Time  `json:"at"`
	RedrivenAt        *time.Time `json:"redriven_at,omitempty"`
	Key               string     `json:"key,omitempty"`
	Value             []byte     `json:"value"`
}

func deadLetterJSON(l kafka.DeadLetter) deadLetterOut {
	o := deadLetterOut{
		ID: l.ID(), Event: l.Event, EventID: l.EventID, Subscriber: l.Subscriber, Group: l.Group, Attempts: l.Attempts,
		Code: l.Status.Code().String(), Message: l.Status.Message(), OriginalTopic: l.OriginalTopic,
		OriginalPartition: l.OriginalPartition, OriginalOffset: l.OriginalOffset, At: l.At, Key: string(l.Key), Value: l.Value,
	}
	if !l.RedrivenAt.IsZero() {
		o.RedrivenAt = &l.RedrivenAt
	}
	return o
}
