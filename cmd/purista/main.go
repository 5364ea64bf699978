// Command purista is the developer tool of purista-go. It links no
// contract: every command reads the user's own, from the buf module in the
// current directory (or --contracts DIR, or the one purista.yaml names),
// or from an image made with `buf build -o FILE` (--image FILE).
//
//	purista init service <name>                scaffold a service repository
//	purista init contracts <name>              scaffold a contracts repository shared by teams
//	purista dev [--demo]                       run the system purista.yaml lists, on an embedded broker
//	purista routes [--json]                    the HTTP route table of the contracts
//	purista call <pkg.Service/Method> [json]   call a method over Kafka, print the JSON reply
//	purista topics ensure|plan                 provision (or plan) the contracts' topics on a cluster
//	purista dlq list|redrive <service>         inspect and re-drive a subscriber's dead letters
//	purista --version
//
// Build it from a checkout with `go build ./cmd/purista` (docs/use.md says
// how to use it from your own repository).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries an exit status for errors already explained on stderr.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes the command line and returns the exit status: 0, 1 for a
// failure, 2 for a usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "purista: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError is a mistake on the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "purista",
		Short: "Develop, call and operate purista-go services",
		Long: `purista is the developer tool of purista-go: gRPC services whose calls travel
as Kafka records, behind an HTTP gateway with the routes compiled in.

It works on your contracts: the buf module in the current directory (or
--contracts DIR, or the one purista.yaml names), built with buf, or an image
made with "buf build -o FILE" (--image FILE). "purista init service <name>"
starts a repository with all of it in place.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("purista {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newInitCmd(), newDevCmd(), newRoutesCmd(), newCallCmd(), newTopicsCmd(), newACLCmd(), newDLQCmd())
	return root
}

// version is the runtime version, the module version when installed with
// go install, the VCS revision when built from a checkout, and Go's.
func version() string {
	v := purista.Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if m := bi.Main.Version; m != "" && m != "(devel)" {
			v += " (module " + m + ")"
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (commit " + s.Value[:12] + ")"
			}
		}
	}
	return v + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}
