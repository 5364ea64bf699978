package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/purista-go/purista/internal/telemetry"
	"github.com/purista-go/purista/transport/kafka"
)

// defaultCallTimeout applies to methods whose contract declares no timeout.
const defaultCallTimeout = 10 * time.Second

func newCallCmd() *cobra.Command {
	var (
		kf       kafkaFlags
		headers  []string
		cf       contractFlags
		timeout  time.Duration
		verbose  bool
		listOnly bool
	)
	cmd := &cobra.Command{
		Use:   "call <package.Service/Method> [json | - | @file]",
		Short: "Call a method over Kafka and print the JSON reply",
		Long: `call sends one request over Kafka, as the generated client does, and prints
the reply as JSON — like grpcurl, with a broker in between. The request is
JSON for the method's request message (protobuf's JSON mapping; "{}" when
left out; "-" reads standard input, @file a file).

Types, request topics, partition keys and timeouts come from your contracts:
the buf module in the current directory (or --contracts DIR, or the one
purista.yaml names), built with buf, or an image (--image set.binpb, made
with "buf build -o set.binpb").

The call's deadline is --timeout, else the method's timeout from the
contract, else 10s. Errors print the status with its details and exit 1.`,
		Example: `  purista call users.v1.UsersService/CreateUser '{"user":{"email":"ada@example.com","display_name":"Ada"}}'
  purista call users.v1.UsersService/GetUser '{"user_id":"u-1f2e3d4c"}' -H x-request-id:debug-1
  purista call --list`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.load(cmdContext(cmd))
			if err != nil {
				return err
			}
			if listOnly {
				return listMethods(cmd.OutOrStdout(), c)
			}
			if len(args) == 0 {
				return usageError{errors.New("name the method to call: purista call package.Service/Method '<json>' (purista call --list shows them)")}
			}
			md, err := c.method(args[0])
			if err != nil {
				return err
			}
			body := "{}"
			if len(args) == 2 {
				if body, err = readBody(args[1], cmd.InOrStdin()); err != nil {
					return err
				}
			}
			req := dynamicpb.NewMessage(md.Input())
			if err := (protojson.UnmarshalOptions{Resolver: c.resolver()}).Unmarshal([]byte(body), req); err != nil {
				return usageError{fmt.Errorf("the request is not valid JSON for %s: %v\n%s", md.Input().FullName(), err, fieldList(md.Input()))}
			}
			resp := dynamicpb.NewMessage(md.Output())
			md2 := metadata.MD{}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(k) == "" {
					return usageError{fmt.Errorf("header %q: write key:value", h)}
				}
				md2.Append(strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v))
			}
			return callOnce(cmd, c, md, req, resp, md2, &kf, timeout, verbose)
		},
	}
	kf.add(cmd.Flags())
	cmd.Flags().StringArrayVarP(&headers, "header", "H", nil, "request metadata key:value (repeatable)")
	cf.add(cmd.Flags())
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "deadline of the call (default: the method's contract timeout, else 10s)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the topic, timing and response metadata on stderr")
	cmd.Flags().BoolVar(&listOnly, "list", false, "list the methods that can be called and exit")
	return cmd
}

func callOnce(cmd *cobra.Command, c *contractSet, md protoreflect.MethodDescriptor, req, resp proto.Message, out metadata.MD, kf *kafkaFlags, timeout time.Duration, verbose bool) error {
	service := string(md.Parent().FullName())
	fullMethod := "/" + service + "/" + string(md.Name())
	// The transport is handed the contract of the service it calls: its
	// topic, partition key and timeout.
	desc, ok := c.service(service)
	if !ok {
		return fmt.Errorf("service %s has no contract in %s", service, c.source)
	}
	if timeout <= 0 {
		timeout = defaultCallTimeout
		for _, m := range desc.Methods {
			if m.FullMethod == fullMethod && m.Timeout > 0 {
				timeout = m.Timeout
			}
		}
	}
	stderr := cmd.ErrOrStderr()
	ctx := cmdContext(cmd)
	brokers, err := kf.reach(ctx)
	if err != nil {
		return err
	}
	logger := discardLogger()
	if verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dctx, cancel := context.WithTimeout(ctx, kf.timeout+5*time.Second)
	defer cancel()
	conn, err := kafka.Dial(dctx, brokers, append([]kafka.ClientOption{kafka.WithLogger(logger), kafka.WithContracts(desc)}, toClient(kf.options())...)...)
	if err != nil {
		return fmt.Errorf("connecting to Kafka at %s: %w", strings.Join(brokers, ","), err)
	}
	defer conn.Close()

	topic := kf.prefix + desc.RequestTopic
	if verbose {
		fmt.Fprintf(stderr, "→ %s on topic %s, deadline %v, reply topic %s\n", fullMethod, topic, timeout, conn.ReplyTopic())
	}
	cctx, ccancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, out), timeout)
	defer ccancel()
	var header, trailer metadata.MD
	start := time.Now()
	err = conn.Invoke(cctx, fullMethod, req, resp, grpc.Header(&header), grpc.Trailer(&trailer))
	took := time.Since(start)
	if verbose {
		code := status.Code(err)
		fmt.Fprintf(stderr, "← %s in %v\n", code, took.Round(10*time.Microsecond))
		printMD(stderr, "header", header)
		printMD(stderr, "trailer", trailer)
	}
	if err != nil {
		st := status.Convert(err)
		fmt.Fprintf(stderr, "purista: %s answered %s: %s\n", strings.TrimPrefix(fullMethod, "/"), telemetry.CodeName(st.Code()), st.Message())
		if st.Code() == codes.DeadlineExceeded && took >= timeout-50*time.Millisecond {
			fmt.Fprintf(stderr, "  no instance of %s answered within %v on topic %s: is it running, with the same --topic-prefix?\n", service, timeout, topic)
		}
		if len(st.Details()) > 0 {
			if b, merr := indentJSON(protojson.MarshalOptions{Resolver: c.resolver()}, st.Proto()); merr == nil {
				fmt.Fprintf(stderr, "%s\n", b)
			}
		}
		return exitError{1}
	}
	b, err := indentJSON(protojson.MarshalOptions{EmitUnpopulated: true, Resolver: c.resolver()}, resp)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
	return err
}

// indentJSON marshals m with protojson and indents the result with
// encoding/json: protojson's own indentation varies its spacing on purpose,
// and output people read and scripts diff should not.
func indentJSON(o protojson.MarshalOptions, m proto.Message) ([]byte, error) {
	raw, err := o.Marshal(m)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func toClient(opts []kafka.Option) []kafka.ClientOption {
	out := make([]kafka.ClientOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

func readBody(arg string, stdin io.Reader) (string, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(stdin)
		return string(b), err
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return "", usageError{fmt.Errorf("reading the request: %w", err)}
		}
		return string(b), nil
	}
	return arg, nil
}

// fieldList describes a message's fields for an error message.
func fieldList(md protoreflect.MessageDescriptor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s has the fields:", md.FullName())
	if md.Fields().Len() == 0 {
		b.WriteString(" none (send {})")
	}
	for i := 0; i < md.Fields().Len(); i++ {
		f := md.Fields().Get(i)
		typ := f.Kind().String()
		switch {
		case f.Message() != nil:
			typ = string(f.Message().FullName())
		case f.Enum() != nil:
			typ = string(f.Enum().FullName())
		}
		if f.IsList() {
			typ = "repeated " + typ
		}
		fmt.Fprintf(&b, "\n  %s (%s)", f.Name(), typ)
	}
	return b.String()
}

func listMethods(w io.Writer, c *contractSet) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tREQUEST\tRESPONSE")
	for _, s := range c.serviceNames() {
		d, err := c.files.FindDescriptorByName(protoreflect.FullName(s))
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if err != nil || !ok {
			continue
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			m := sd.Methods().Get(i)
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\n", s, m.Name(), m.Input().FullName(), m.Output().FullName())
		}
	}
	return tw.Flush()
}

func printMD(w io.Writer, kind string, md metadata.MD) {
	for k, vs := range md {
		for _, v := range vs {
			fmt.Fprintf(w, "  %s %s: %s\n", kind, k, v)
		}
	}
}

// codeName is the status code as the gRPC spec spells it (NOT_FOUND).
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
