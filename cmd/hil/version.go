package main

import (
	"context"
	"fmt"
	"io"
)

// version is the harness's own version, set at build time with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func init() {
	register(command{
		name:    "version",
		summary: "print the harness version",
		run: func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			_, err := fmt.Fprintf(stdout, "hil %s\n", version)
			return err
		},
	})
}
