package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/onenet-hil/hil/harness/link"
)

func init() {
	register(command{
		name:    "ports",
		summary: "list serial ports and mark the ones that look like an ESP8266 board",
		run:     runPorts,
	})
}

func runPorts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hil ports", flag.ContinueOnError)
	if err := parseFlags(fs, args, stderr, "usage: hil ports",
		"Lists the serial ports; the ones that look like an ESP8266 board (CH340, CP210x, FTDI) are marked."); err != nil {
		return err
	}
	ports, err := link.Ports()
	if err != nil {
		return err
	}
	return printPorts(stdout, ports)
}

func printPorts(w io.Writer, ports []link.PortInfo) error {
	if len(ports) == 0 {
		_, err := fmt.Fprintln(w, "no serial ports found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tUSB ID\tSERIAL\tPRODUCT\tBOARD")
	for _, p := range ports {
		id, board := "-", ""
		if p.IsUSB {
			id = p.VID + ":" + p.PID
		}
		if p.LooksLikeESP8266() {
			board = "* ESP8266? (" + p.Chip + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, id, dash(p.SerialNumber), dash(p.Product), board)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
