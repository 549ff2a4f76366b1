package main

import (
	"context"
	"flag"
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
		run:     runVersion,
	})
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hil version", flag.ContinueOnError)
	if err := parseFlags(fs, args, stderr, "usage: hil version", "Prints the harness version."); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "hil %s\n", version)
	return err
}
