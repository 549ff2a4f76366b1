// Command hil is the OneNET hardware-in-the-loop harness: it runs a OneNET
// stand-in broker, drives a MicroPython board (real or virtual) over its
// serial port and checks the board's LED against a model.
//
// Each subcommand lives in its own file and registers itself in init(), so
// the parts of the harness can grow without touching this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one `hil <name>` subcommand.
type command struct {
	name    string
	summary string
	// run parses args with parseFlags (its own flag.FlagSet, a usage
	// line) and returns an error; an exitError carries a specific exit
	// code.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("hil: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// exitError lets a command choose its exit code (for example "some
// scenarios failed") without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hil <command> [flags]")
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "Run 'hil <command> -h' for the flags of one command.")
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "hil: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, args[1:], stdout, stderr)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "hil %s: %v\n", c.name, err)
		return 1
	}
}

// parseFlags parses a command's flags with its usage line and one-line
// description; a bad flag or a stray argument is exit status 2 (the flag
// package, or this, has already said what is wrong), -h is flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage, about string) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fmt.Fprintln(stderr, "\n"+about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{2}
	}
	if fs.NArg() > 0 {
		what := fmt.Sprintf("argument %q", fs.Arg(0))
		if fs.NArg() > 1 {
			what = fmt.Sprintf("arguments %q", fs.Args())
		}
		fmt.Fprintf(stderr, "hil %s: unexpected %s\n", strings.TrimPrefix(fs.Name(), "hil "), what)
		fs.Usage()
		return exitError{2}
	}
	return nil
}
