package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/transport/kafka"
)

func newTopicsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Manage the Kafka topics of the contracts",
	}
	var (
		kf          kafkaFlags
		partitions  int
		replication int
	)
	ensure := &cobra.Command{
		Use:   "ensure",
		Short: "Create the request and event topics the contracts need",
		Long: `ensure creates, on the given cluster, every request topic of the compiled-in
contracts' services and every event topic, with the partitions and
replication factor the contracts declare (or --partitions and
--replication-factor where they declare none). Topics that exist are left
alone and reported, with a warning when they have fewer partitions than
declared. Running it again changes nothing: provision topics with it before
deploying, as the brokers never create them on their own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partitions < 1 {
				return usageError{fmt.Errorf("--partitions %d: must be at least 1", partitions)}
			}
			ctx := cmdContext(cmd)
			brokers, err := kf.reach(ctx)
			if err != nil {
				return err
			}
			opts := append(kf.options(), kafka.WithEnsureTopics(partitions, replication))
			ctx, cancel := context.WithTimeout(ctx, kf.timeout+30e9)
			defer cancel()
			results, err := kafka.EnsureTopics(ctx, brokers, contracts.Services(), contracts.Events(), opts...)
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRESULT")
			created, existed, warned := 0, 0, 0
			for _, r := range results {
				res := "created"
				if !r.Created {
					res, existed = "exists", existed+1
				} else {
					created++
				}
				if r.Warning != "" {
					res += ": " + r.Warning
					warned++
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Name, r.Partitions, res)
			}
			_ = tw.Flush()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d topics: %d created, %d already existed", len(results), created, existed)
			if warned > 0 {
				fmt.Fprintf(out, ", %d with warnings", warned)
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	kf.add(ensure.Flags())
	ensure.Flags().IntVar(&partitions, "partitions", 3, "partitions of topics whose contract declares none")
	ensure.Flags().IntVar(&replication, "replication-factor", -1, "replication factor of topics whose contract declares none (-1: the broker's default)")
	cmd.AddCommand(ensure, newTopicsGCCmd())
	return cmd
}

func newTopicsGCCmd() *cobra.Command {
	var (
		kf     kafkaFlags
		idle   time.Duration
		dryRun bool
	)
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Delete the reply and stream control topics of instances that are gone",
		Long: `gc deletes the per-instance topics that have had no record for --idle: the
reply topics of clients (purista.reply.<client id>) and the stream control
topics of servers with streaming methods (purista.stream.<client id>). A live
instance writes a keepalive to its topic when it starts and every minute, and
deletes the topic when it stops; a topic that stayed silent belongs to a
process that died. --dry-run lists them without deleting.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			brokers, err := kf.reach(ctx)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, kf.timeout+30*time.Second)
			defer cancel()
			topics, err := kafka.CollectIdleTopics(ctx, brokers, idle, dryRun, kf.options()...)
			out := cmd.OutOrStdout()
			verb := "deleted"
			if dryRun {
				verb = "would delete"
			}
			for _, t := range topics {
				fmt.Fprintf(out, "%s %s\n", verb, t)
			}
			if err != nil {
				return err
			}
			noun := "topics"
			if len(topics) == 1 {
				noun = "topic"
			}
			fmt.Fprintf(out, "%s %d idle %s\n", verb, len(topics), noun)
			return nil
		},
	}
	kf.add(gc.Flags())
	gc.Flags().DurationVar(&idle, "idle", 10*time.Minute, "delete per-instance topics without a record for this long (at least 5m)")
	gc.Flags().BoolVar(&dryRun, "dry-run", false, "list the topics, delete nothing")
	return gc
}
