package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/gateway"
)

func newRoutesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Print the HTTP route table compiled into the gateway",
		Long: `routes prints the gateway's route table as the contracts' google.api.http
annotations define it: verb, path template, method, request topic, the
deadline a call gets, and whether the route skips authentication. It is the
table the gateway serves on /routes, built the same way, with no broker or
service needed: routes are compiled in, never learnt at run time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := system.NewGateway(noConn{}, system.GatewayConfig{}, discardLogger())
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
	return cmd
}

// noConn is the connection of a gateway that only describes its routes.
type noConn struct{}

func (noConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Error(codes.Unavailable, "not connected")
}

func (noConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unavailable, "not connected")
}
