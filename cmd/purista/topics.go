package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista/transport/kafka"
)

func newTopicsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Provision and inspect the Kafka topics of your contracts",
	}
	cmd.AddCommand(newTopicsEnsureCmd(false), newTopicsEnsureCmd(true), newTopicsGCCmd())
	return cmd
}

// newTopicsEnsureCmd returns "topics ensure", or "topics plan", which
// reports what ensure would do and changes nothing.
func newTopicsEnsureCmd(plan bool) *cobra.Command {
	var (
		kf          kafkaFlags
		cf          contractFlags
		partitions  int
		replication int
	)
	cmd := &cobra.Command{
		Use:   "ensure",
		Short: "Create the request, event and dead-letter topics your contracts need",
		Long: `ensure creates, on the given cluster, every request topic of your contracts'
services, every event topic and the dead-letter topic of every subscribing
service, with the partitions and replication factor the contracts declare
(or --partitions and --replication-factor where they declare none). Topics
that exist are left alone and reported, with a warning when they have fewer
partitions than declared. Running it again changes nothing: provision topics
with it before deploying, as the brokers never create them on their own.
"purista topics plan" shows what it would do first.

The contracts are the buf module in the current directory (or --contracts
DIR, or the one purista.yaml names), or an image (--image).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partitions < 1 {
				return usageError{fmt.Errorf("--partitions %d: must be at least 1", partitions)}
			}
			ctx := cmdContext(cmd)
			c, err := cf.load(ctx)
			if err != nil {
				return err
			}
			brokers, err := kf.reach(ctx)
			if err != nil {
				return err
			}
			opts := append(kf.options(), kafka.WithEnsureTopics(partitions, replication), kafka.WithLogger(discardLogger()))
			ctx, cancel := context.WithTimeout(ctx, kf.timeout+30*time.Second)
			defer cancel()
			if plan {
				plans, err := kafka.PlanTopics(ctx, brokers, c.services, c.events, opts...)
				if err != nil && len(plans) == 0 {
					return err
				}
				printPlan(cmd.OutOrStdout(), plans)
				return err
			}
			results, err := kafka.EnsureTopics(ctx, brokers, c.services, c.events, opts...)
			if err != nil && len(results) == 0 {
				return err
			}
			printEnsured(cmd.OutOrStdout(), results)
			return err
		},
	}
	if plan {
		cmd.Use = "plan"
		cmd.Short = "Show what \"topics ensure\" would create, and how existing topics differ from the contracts"
		cmd.Long = `plan compares the topics your contracts need with the cluster and changes
nothing: per topic, whether ensure would create it (with which partitions,
replication factor and configuration) or finds it, and how an existing
topic differs from what the contracts declare (ensure never alters one).`
	}
	kf.add(cmd.Flags())
	cf.add(cmd.Flags())
	cmd.Flags().IntVar(&partitions, "partitions", 3, "partitions of topics whose contract declares none")
	cmd.Flags().IntVar(&replication, "replication-factor", -1, "replication factor of topics whose contract declares none (-1: the broker's default)")
	return cmd
}

func printEnsured(out io.Writer, results []kafka.TopicResult) {
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
	fmt.Fprintf(out, "%d topics: %d created, %d already existed", len(results), created, existed)
	if warned > 0 {
		fmt.Fprintf(out, ", %d with warnings", warned)
	}
	fmt.Fprintln(out)
}

func printPlan(out io.Writer, plans []kafka.TopicPlan) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tCONFIG\tPLAN")
	create, differ := 0, 0
	for _, p := range plans {
		repl := "default"
		if p.Spec.ReplicationFactor > 0 {
			repl = strconv.Itoa(p.Spec.ReplicationFactor)
		}
		parts, action := strconv.Itoa(p.Spec.Partitions), "create"
		if p.Exists {
			parts, repl, action = strconv.Itoa(p.Partitions), strconv.Itoa(p.ReplicationFactor), "exists, unchanged"
			if len(p.Differences) > 0 {
				action = "exists, differs: " + strings.Join(p.Differences, "; ")
				differ++
			}
		} else {
			create++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Spec.Name, parts, repl, configString(p.Spec.Config), action)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "%d topics: ensure would create %d; %d exist, %d of them differ from the contracts\n", len(plans), create, len(plans)-create, differ)
}

func configString(cfg map[string]string) string {
	if len(cfg) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + cfg[k]
	}
	return strings.Join(keys, ",")
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
