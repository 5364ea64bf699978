// Command image writes the example contracts, with their imports, as a
// FileDescriptorSet — what `buf build -o FILE` makes — from the descriptors
// compiled into their generated Go code. `make demo` hands it to
// `purista dev --image`, so the demo needs Go and nothing else.
//
//	go run ./examples/contracts/image -o contracts.binpb
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/purista-go/purista/examples/contracts"
)

func main() {
	out := flag.String("o", "", "write the set to this file (default: standard output)")
	flag.Parse()
	data, err := contracts.Image()
	if err == nil {
		if *out == "" {
			_, err = os.Stdout.Write(data)
		} else {
			err = os.WriteFile(*out, data, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}
