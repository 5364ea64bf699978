package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v4"

	"github.com/purista-go/purista/internal/acl"
)

func newACLCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Derive the Kafka ACLs of your system from the contracts and apply them",
		Long: `acl gives each principal of your system (a service, a caller, the gateway) the
Kafka permissions the contracts say it needs and nothing more: a service takes
its own requests with its own consumer group, answers into reply topics,
publishes its own events and reads its subscriptions; a caller writes only the
request topics of the services it calls and reads only its own reply topics
(docs/security.md).

The principals are the acl: section of purista.yaml, or --acl-file (a file with
that section's content):

  acl:
    principals:
      - principal: User:orders
        serves: [orders.v1.OrdersService]
        calls: [users.v1.UsersService]
      - principal: User:gateway
        gateway: true        # calls every service with an HTTP route

Every instance of a principal must use a client id starting with its
client_id_prefix (default: its name and "-", e.g. orders-).`,
	}
	cmd.AddCommand(newACLPlanCmd(), newACLApplyCmd())
	return cmd
}

// aclFlags are the flags of both acl commands.
type aclFlags struct {
	file string
	cf   contractFlags
}

func (f *aclFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "acl-file", "", "YAML file with the acl: section's content (default: the acl: section of purista.yaml)")
	f.cf.add(cmd.Flags())
}

// plan loads the contracts and the principals and derives the ACLs.
func (f *aclFlags) plan(ctx context.Context, prefix string) ([]acl.ACL, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	if prefix != "" {
		cfg.TopicPrefix = prefix
	}
	c, err := f.cf.load(ctx)
	if err != nil {
		return nil, err
	}
	acls, err := acl.Plan(c.services, c.events, cfg)
	if acl.IsConfigError(err) {
		return nil, usageError{err}
	}
	return acls, err
}

func (f *aclFlags) config() (acl.Config, error) {
	var cfg acl.Config
	if f.file == "" {
		p, err := readProjectFile(".")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return cfg, usageError{errors.New("no principals: run in the directory of a purista.yaml with an acl: section, or pass --acl-file FILE (docs/security.md)")}
			}
			return cfg, err
		}
		if p.ACL == nil {
			return cfg, usageError{errors.New(projectFileName + " has no acl: section: list the principals there or pass --acl-file FILE (docs/security.md)")}
		}
		return *p.ACL, nil
	}
	data, err := os.ReadFile(f.file)
	if err != nil {
		return cfg, usageError{fmt.Errorf("--acl-file: %w", err)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, usageError{fmt.Errorf("--acl-file %s: %v (fields: topic_prefix, principals: principal, serves, calls, gateway, client_id_prefix)", f.file, err)}
	}
	return cfg, nil
}

func newACLPlanCmd() *cobra.Command {
	var (
		f      aclFlags
		prefix string
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the ACLs the contracts and principals call for; changes nothing, needs no cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acls, err := f.plan(cmdContext(cmd), prefix)
			if err != nil {
				return err
			}
			if err := acl.Print(cmd.OutOrStdout(), acls); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d ACLs\n", len(acls))
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&prefix, "topic-prefix", envOr("PURISTA_TOPIC_PREFIX", ""), "prefix of every topic and group, as the services were given (env PURISTA_TOPIC_PREFIX); overrides the file's topic_prefix")
	return cmd
}

func newACLApplyCmd() *cobra.Command {
	var (
		f  aclFlags
		kf kafkaFlags
	)
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create the ACLs on the cluster that it does not have yet",
		Long: `apply creates, through the Kafka admin API, every ACL "acl plan" prints that
the cluster does not have yet, and reports the others as existing: running it
again changes nothing. It deletes no ACL. Authenticate as a super user or a
principal with ALTER and DESCRIBE on the cluster (--kafka-sasl-*, --kafka-tls-*).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			acls, err := f.plan(ctx, kf.prefix)
			if err != nil {
				return err
			}
			brokers, err := kf.reach(ctx)
			if err != nil {
				return err
			}
			opts, err := kf.auth.KgoOptions()
			if err != nil {
				return usageError{err}
			}
			opts = append(opts, kgo.SeedBrokers(brokers...), kgo.DialTimeout(kf.timeout), kgo.RequestRetries(2))
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(ctx, kf.timeout+30*time.Second)
			defer cancel()
			results, err := acl.Apply(ctx, cl, acls)
			out := cmd.OutOrStdout()
			created := 0
			for _, r := range results {
				verb := "exists "
				switch {
				case r.Err != nil:
					verb = "failed "
				case !r.Existed:
					verb, created = "created", created+1
				}
				fmt.Fprintf(out, "%s  %s\n", verb, r.ACL)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d ACLs: %d created, %d already existed\n", len(results), created, len(results)-created)
			return nil
		},
	}
	f.add(cmd)
	kf.add(cmd.Flags())
	return cmd
}
