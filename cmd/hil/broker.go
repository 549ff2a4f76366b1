package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"syscall"
	"text/tabwriter"

	"github.com/onenet-hil/hil/broker"
)

func init() {
	register(command{
		name:    "broker",
		summary: "run only the OneNET stand-in broker (MQTT + HTTP API)",
		run:     runBroker,
	})
}

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hil broker", flag.ContinueOnError)
	regPath := fs.String("registry", "", "registry YAML file of products and devices (default: the demo registry)")
	mqttAddr := fs.String("mqtt", broker.DefaultMQTTAddr, "MQTT listen address (OneNET's port 6002; use 0.0.0.0:6002 or a LAN address for a real board)")
	httpAddr := fs.String("http", broker.DefaultHTTPAddr, "OneNET HTTP API listen address (legacy API and the studio sync command API)")
	clientQueue := fs.Int("client-queue", 0, fmt.Sprintf("each client's outbound queue in packets (0 = Mochi's 8192; %d for a fleet of thousands: a smaller heap and shorter GC pauses; a full queue drops that client's message)", broker.FleetClientWritesPending))
	studioAddr := fs.String("studio", broker.DefaultStudioAddr, "listen address of the current OneNET platform's MQTT (token login, $sys topics); empty = off")
	dataDir := fs.String("data", "", "keep sessions, kept commands, the command history and data points in this directory across restarts (created 0700; empty = in memory)")
	if err := parseFlags(fs, args, stderr, "usage: hil broker [--registry FILE] [--mqtt ADDR] [--http ADDR] [--studio ADDR] [--client-queue N] [--data DIR]",
		"Runs the OneNET stand-in until Ctrl-C; logs every event."); err != nil {
		return err
	}
	reg := broker.DemoRegistry()
	if *regPath != "" {
		var err error
		if reg, err = broker.LoadRegistry(*regPath); err != nil {
			return err
		}
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(broker.ServeGOGC) // see ServeGOGC; $GOGC overrides
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	b, err := broker.New(broker.Options{Registry: reg, MQTTAddr: *mqttAddr, HTTPAddr: *httpAddr, StudioAddr: *studioAddr,
		ClientWritesPending: *clientQueue, Logger: log, DataDir: *dataDir})
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			// Most often a system mosquitto on 1883 or another hil broker.
			return fmt.Errorf("%w\n(another program listens there: choose other addresses with --mqtt, --http, --studio; --studio \"\" turns the studio listener off)", err)
		}
		return err
	}
	printConsole(stdout, reg, b.MQTTAddr(), b.HTTPAddr(), b.StudioAddr(), *regPath)
	if *dataDir != "" {
		fmt.Fprintf(stdout, "State kept in %s (kept commands, command history, data points, sessions).\n", *dataDir)
	} else {
		fmt.Fprintln(stdout, "State in memory: lost when the broker stops (--data DIR keeps it).")
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping broker")
	return b.Close() // its last log line says what was kept and what was dropped
}

// printConsole shows, per device, what OneNET's console shows a developer:
// the ids and server to put in the firmware, keys masked.
func printConsole(w io.Writer, reg *broker.Registry, mqttAddr, httpAddr, studioAddr, regPath string) {
	src := regPath
	if src == "" {
		src = "demo registry"
	}
	fmt.Fprintf(w, "OneNET stand-in broker (%s)\n", src)
	fmt.Fprintf(w, "  MQTT server:  %s   (client id = device ID, user = product ID, password = auth_info or master key)\n", mqttAddr)
	fmt.Fprintf(w, "  HTTP API:     http://%s   (header api-key: the product's master key)\n", httpAddr)
	if studioAddr != "" {
		fmt.Fprintf(w, "  Studio MQTT:  %s   (client id = device ID, user = product ID, password = token: hil token)\n", studioAddr)
	}
	if host, _, err := net.SplitHostPort(mqttAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			fmt.Fprintln(w, "  (loopback only: a real board needs --mqtt 0.0.0.0:6002 or this machine's LAN address)")
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPRODUCT ID\tPRODUCT\tMASTER KEY\tACCESS KEY\tDEVICE ID\tTITLE\tAUTH INFO\tDEVICE KEY\tSTATE")
	for _, p := range reg.Products() {
		for _, d := range p.Devices {
			state := "enabled"
			if d.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, broker.Mask(p.MasterKey), maskOrDash(p.AccessKey),
				d.ID, d.Title, broker.Mask(d.AuthInfo), maskOrDash(d.Key), state)
		}
	}
	_ = tw.Flush()
	if regPath == "" {
		fmt.Fprintln(w, "\nThe demo registry's keys are documented in broker/README.md.")
	}
	fmt.Fprintf(w, "\nSend a command:  curl -X POST -H 'api-key: <master key>' --data on 'http://%s/cmds?device_id=<device ID>'\n", httpAddr)
	fmt.Fprintln(w, "Ctrl-C stops the broker.")
}

func maskOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return broker.Mask(s)
}
