package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista/examples/system"
)

func newServeCmd() *cobra.Command {
	components := append([]string{system.Gateway}, system.Services...)
	return &cobra.Command{
		Use:   "serve <" + strings.Join(components, "|") + "> [flags]",
		Short: "Run one component of the example system over Kafka",
		Long: `serve runs one component of the example system over Kafka, exactly as its
own main does (examples/gateway, examples/services/<name>), with the same
flags and PURISTA_* environment variables ("purista serve users -h" lists
them). "purista dev" starts one "purista serve" process per component.`,
		Example:            "  purista serve users -brokers 127.0.0.1:9092\n  PURISTA_BROKERS=kafka:9092 purista serve gateway -http 127.0.0.1:8080",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || !slices.Contains(components, args[0]) {
				if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
					return cmd.Help()
				}
				return usageError{fmt.Errorf("name the component to serve: one of %s", strings.Join(components, ", "))}
			}
			name := args[0]
			fs := flag.NewFlagSet("purista serve "+name, flag.ContinueOnError)
			fs.SetOutput(cmd.ErrOrStderr())
			var cfg system.Config
			cfg.RegisterFlags(fs, name == system.Gateway)
			withParent := fs.Bool("exit-with-parent", false, "stop gracefully when standard input is closed (purista dev sets it, so a component never outlives it)")
			if err := fs.Parse(args[1:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return nil
				}
				return usageError{err}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			logger := cfg.Logger(cmd.ErrOrStderr(), name)
			ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if *withParent {
				stdin := cmd.InOrStdin()
				go func() {
					_, _ = io.Copy(io.Discard, stdin)
					stop()
				}()
			}
			if err := system.Run(ctx, name, cfg, logger); err != nil {
				logger.Error(name+" failed", "error", err)
				return exitError{1}
			}
			logger.Info("stopped")
			return nil
		},
	}
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
