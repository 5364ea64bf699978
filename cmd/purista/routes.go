package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"text/tabwriter"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista/gateway"
)

func newRoutesCmd() *cobra.Command {
	var (
		asJSON bool
		cf     contractFlags
	)
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Print the HTTP route table of your contracts",
		Long: `routes prints the route table a gateway built from your contracts serves, as
their google.api.http annotations define it: verb, path template, method,
request topic, the deadline a call gets, and whether the route skips
authentication. It is the table the gateway serves on /routes, built the
same way and with the same conflict checks, with no broker or service
needed: routes are compiled into the gateway, never learnt at run time.

The contracts are the buf module in the current directory (or --contracts
DIR, or the one purista.yaml names), or an image (--image).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.load(cmdContext(cmd))
			if err != nil {
				return err
			}
			g, err := describeGateway(c)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				rec := httptest.NewRecorder()
				g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, gateway.PathRoutes, nil))
				if rec.Code != http.StatusOK {
					return fmt.Errorf("the gateway answered %d for %s: %s", rec.Code, gateway.PathRoutes, rec.Body)
				}
				_, err := fmt.Fprintln(out, strings.TrimSpace(rec.Body.String()))
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "VERB\tPATH\tMETHOD\tTOPIC\tTIMEOUT\tPUBLIC")
			for _, r := range g.Routes() {
				auth := "no"
				if r.Public {
					auth = "yes"
				}
				timeout := "none"
				if r.Timeout > 0 {
					timeout = r.Timeout.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Verb, r.Path, strings.TrimPrefix(r.FullMethod, "/"), r.Topic, timeout, auth)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the gateway's /routes endpoint does")
	cf.add(cmd.Flags())
	return cmd
}

// describeGateway builds a gateway for the contracts' routes that serves
// nothing but its own endpoints: the CLI has no generated handlers, so each
// service gets a RegisterHTTP that registers none, and the gateway's route
// table and its checks are those of a real gateway.
func describeGateway(c *contractSet) (*gateway.Gateway, error) {
	services := make([]gateway.Service, len(c.services))
	for i, s := range c.services {
		services[i] = gateway.Service{Contract: s, RegisterHTTP: func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error { return nil }}
	}
	return gateway.New(noConn{}, gateway.WithServices(services...), gateway.WithLogger(discardLogger()))
}

// noConn is the connection of a gateway that only describes its routes.
type noConn struct{}

func (noConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Error(codes.Unavailable, "not connected")
}

func (noConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unavailable, "not connected")
}
