package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/onenet-hil/hil/broker"
)

// keyEnv carries the key so that it stays out of the shell history and ps.
const keyEnv = "HIL_STUDIO_KEY" // not HIL_DEVICE_KEY: that one is a legacy auth_info (hil flash)

// tokenNow is the clock --expires durations count from; tests replace it.
var tokenNow = time.Now

func init() {
	register(command{
		name:    "token",
		summary: "print a OneNET Studio token (MQTT password / API authorization) for a device or product",
		run:     runToken,
	})
}

func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hil token", flag.ContinueOnError)
	product := fs.String("product", "", "product ID (required unless --user)")
	user := fs.String("user", "", "account (user) ID: an application API token, res=userid/{id}, version 2022-05-01, signed with the account's access key")
	device := fs.String("device", "", "device name; omit for a product-level token (res=products/{pid}, product access key)")
	key := fs.String("key", "", "base64 device key (or product access key); default $"+keyEnv)
	method := fs.String("method", "sha256", "signature method: md5, sha1 or sha256")
	expires := fs.String("expires", "8760h", "expiry: a duration from now (8760h), an RFC 3339 time or unix seconds")
	if err := parseFlags(fs, args, stderr, "usage: hil token (--product P [--device D] | --user U) [--key K | $"+keyEnv+"] [--method sha256] [--expires 8760h]",
		"Prints a token for config.json's \"token\" (studio platform). The key is never printed."); err != nil {
		return err
	}
	var errs []error
	switch {
	case *user != "" && (*product != "" || *device != ""):
		errs = append(errs, errors.New("--user makes an account token: no --product or --device with it"))
	case *user == "" && *product == "":
		errs = append(errs, errors.New("--product (or --user) is required"))
	}
	for _, f := range []struct{ name, v string }{{"product", *product}, {"device", *device}, {"user", *user}} {
		if strings.ContainsAny(f.v, "/ \t\r\n") {
			errs = append(errs, fmt.Errorf("--%s %q: no '/' or spaces in an ID", f.name, f.v))
		}
	}
	k := *key
	if k == "" {
		k = os.Getenv(keyEnv)
	}
	if k == "" {
		errs = append(errs, errors.New("a key is required: --key or $"+keyEnv))
	}
	et, err := parseExpiry(*expires, tokenNow())
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	res := "products/" + *product
	if *device != "" {
		res += "/devices/" + *device
	}
	// The errors name the method or the base64 position, never the key.
	var tok string
	if *user != "" {
		tok, err = broker.MakeUserToken(*user, k, *method, et)
	} else {
		tok, err = broker.MakeToken(res, k, *method, et)
	}
	if err != nil {
		return err
	}
	if !et.After(tokenNow()) {
		fmt.Fprintf(stderr, "hil token: warning: this token expired at %s; the platform refuses it\n", et.UTC().Format(time.RFC3339))
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// parseExpiry reads --expires: a Go duration from now, an RFC 3339 time or
// unix seconds.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("--expires is empty")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return time.Time{}, fmt.Errorf("--expires %s: unix seconds must be positive", s)
		}
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: want a duration (8760h), an RFC 3339 time (2030-01-01T00:00:00Z) or unix seconds", s)
	}
	return now.Add(d), nil
}
