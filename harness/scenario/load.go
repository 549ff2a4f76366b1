package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/onenet-hil/hil/harness/echo"
)

// MaxSteps bounds a scenario's expanded length (repeat and random multiply).
const MaxSteps = 100_000

// Error is a problem in a scenario file, with its position.
type Error struct {
	File   string
	Line   int // 0 when unknown
	Column int
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Column == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// JunkPayloads are the "junk" of a random block: payloads that look like
// commands but are not (wrong case, digits, JSON, non-ASCII).
var JunkPayloads = []string{"ON", "Off", "TOGGLE", "blink", "1", "0", "onoff", `{"led":1}`, "\u5f00\u706f"}

// LoadDir loads every *.yaml and *.yml file in dir, in name order. It
// returns the scenarios that loaded and, joined, the errors of those that
// did not.
func LoadDir(dir string) ([]*Scenario, error) {
	// os.DirFS's errors name ".", not the folder: check it here first.
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	return loadFS(os.DirFS(dir), dir)
}

// LoadFS is LoadDir on a file system, such as the suite embedded in the
// binary; name stands for it in errors and in each scenario's File.
func LoadFS(fsys fs.FS, name string) ([]*Scenario, error) {
	return loadFS(fsys, name)
}

func loadFS(fsys fs.FS, name string) ([]*Scenario, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var out []*Scenario
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sc, err := Parse(filepath.Join(name, n), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sc)
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no scenario files (*.yaml)", name))
	}
	return out, errors.Join(errs...)
}

// LoadFile reads and parses one scenario file.
func LoadFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse parses, validates and expands one scenario. file names the source
// in errors. Every problem found is reported (joined), each with its line.
func Parse(file string, data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, &Error{File: file, Msg: "empty file: a scenario needs a name and steps"}
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		line := extra.Line
		if err != nil {
			return nil, yamlError(file, err)
		}
		return nil, &Error{File: file, Line: line, Msg: "more than one YAML document: one scenario per file"}
	}
	l := &loader{file: file, sc: &Scenario{File: file, Channel: Creq, Profile: "hil"}}
	l.checkAliases(&doc)
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	l.top(doc.Content[0])
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return l.sc, nil
}

func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: n, Msg: m[2]}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

type loader struct {
	file string
	sc   *Scenario
	prof echo.Profile
	errs []error
}

func (l *loader) errf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

// checkAliases rejects aliases: a scenario is read by people, and aliases
// can multiply a small file into a huge one.
func (l *loader) checkAliases(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		l.errf(n, "aliases (*%s) are not supported in scenario files", n.Value)
		return
	}
	for _, c := range n.Content {
		l.checkAliases(c)
	}
}

// fields returns a mapping's values by key, reporting unknown and repeated
// keys; ok is false when n is not a mapping.
func (l *loader) fields(n *yaml.Node, what string, allowed ...string) (map[string]*yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		l.errf(n, "%s must be a mapping (key: value), not %s", what, kindName(n))
		return nil, false
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.errf(k, "%s: keys must be plain words", what)
			continue
		}
		if !slices.Contains(allowed, k.Value) {
			l.errf(k, "%s: unknown key %q (allowed: %s)", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			l.errf(k, "%s: key %q given twice", what, k.Value)
			continue
		}
		out[k.Value] = v
	}
	return out, true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "empty"
}

func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errf(n, "%s must be a value, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (l *loader) oneOf(n *yaml.Node, what string, options ...string) (string, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return "", false
	}
	if !slices.Contains(options, s) {
		l.errf(n, "%s: %q is not one of %s", what, s, strings.Join(options, ", "))
		return "", false
	}
	return s, true
}

func (l *loader) integer(n *yaml.Node, what string, lo, hi int) (int, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		l.errf(n, "%s: %q is not a whole number from %d to %d", what, s, lo, hi)
		return 0, false
	}
	return v, true
}

func (l *loader) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return false, false
	}
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	l.errf(n, "%s: %q is not true or false", what, s)
	return false, false
}

func (l *loader) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := l.str(n, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > time.Hour {
		l.errf(n, "%s: %q is not a duration like 500ms, 5s or 2m (at most 1h)", what, s)
		return 0, false
	}
	return d, true
}

var topKeys = []string{"name", "description", "channel", "profile", "requires", "credentials", "timeouts", "steps"}

func (l *loader) top(n *yaml.Node) {
	f, ok := l.fields(n, "scenario", topKeys...)
	if !ok {
		return
	}
	sc := l.sc
	if v := f["name"]; v == nil {
		l.errf(n, "scenario: missing name")
	} else if s, ok := l.str(v, "name"); ok {
		if strings.TrimSpace(s) == "" {
			l.errf(v, "name is empty")
		}
		sc.Name = s
	}
	if v := f["description"]; v != nil {
		sc.Description, _ = l.str(v, "description")
	}
	if v := f["channel"]; v != nil {
		if s, ok := l.oneOf(v, "channel", "creq", "topic", "http", "property"); ok {
			sc.Channel = Channel(s)
		}
	}
	if v := f["profile"]; v != nil {
		if s, ok := l.oneOf(v, "profile", echo.Names()...); ok {
			sc.Profile = s
		}
	}
	l.prof, _ = echo.Lookup(sc.Profile)
	if v := f["requires"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			l.errf(v, "requires must be a list, like [virtual]")
		} else {
			for _, r := range v.Content {
				if s, ok := l.oneOf(r, "requires", string(Virtual)); ok {
					sc.Requires = append(sc.Requires, Requirement(s))
				}
			}
		}
	}
	if v := f["credentials"]; v != nil {
		if s, ok := l.oneOf(v, "credentials", "good", "wrong"); ok {
			sc.WrongCredentials = s == "wrong"
		}
	}
	if v := f["timeouts"]; v != nil {
		if tf, ok := l.fields(v, "timeouts", "send", "expect", "fault", "ready"); ok {
			for k, dst := range map[string]*time.Duration{"send": &sc.Timeouts.Send, "expect": &sc.Timeouts.Expect,
				"fault": &sc.Timeouts.Fault, "ready": &sc.Timeouts.Ready} {
				if tv := tf[k]; tv != nil {
					*dst, _ = l.duration(tv, "timeouts."+k)
				}
			}
		}
	}
	v := f["steps"]
	if v == nil {
		l.errf(n, "scenario: missing steps")
		return
	}
	if len(l.errs) > 0 {
		return // the steps' meaning depends on the header
	}
	protos := l.steps(v, 0, 0)
	if len(protos) == 0 && len(l.errs) == 0 {
		l.errf(v, "steps: the list is empty")
	}
	if len(l.errs) > 0 {
		return
	}
	x := &expander{l: l, steps: make([]Step, 0, 16)}
	x.expand(protos, false)
	if x.offline != nil && !x.failed {
		l.errf(x.offline, "wifi_down has no wifi_up after it: the scenario would end with the board offline")
	}
	sc.Steps = x.steps
}

// proto is a parsed step before expansion.
type proto struct {
	node   *yaml.Node
	step   Step // a leaf, when count == 0
	count  int  // repeat or random count
	random bool
	burst  bool
	kids   []proto // repeat
	seed   uint64  // random
	mix    []string
}

var actions = []string{"send", "expect", "wait", "fault", "repeat", "random", "heap"}

var stepKeys = map[string][]string{
	"send":   {"send", "channel", "qos", "nowait", "timeout"},
	"expect": {"expect", "timeout"},
	"wait":   {"wait"},
	"fault":  {"fault", "timeout"},
	"repeat": {"repeat", "steps", "burst", "timeout"},
	"random": {"random", "seed", "mix", "burst", "timeout", "channel", "qos"},
	"heap":   {"heap", "timeout"},
}

// steps parses a list of steps; timeout is inherited from the enclosing
// block.
func (l *loader) steps(n *yaml.Node, timeout time.Duration, depth int) []proto {
	if n.Kind != yaml.SequenceNode {
		l.errf(n, "steps must be a list (each item starting with -), not %s", kindName(n))
		return nil
	}
	if depth > 8 {
		l.errf(n, "steps: repeat blocks nested more than 8 deep")
		return nil
	}
	var out []proto
	for _, item := range n.Content {
		if p, ok := l.step(item, timeout, depth); ok {
			out = append(out, p)
		}
	}
	return out
}

// step parses one step; timeout is inherited from the enclosing block.
func (l *loader) step(n *yaml.Node, timeout time.Duration, depth int) (proto, bool) {
	p := proto{node: n}
	act, ok := l.action(n)
	if !ok {
		return p, false
	}
	f, ok := l.fields(n, act+" step", stepKeys[act]...)
	if !ok {
		return p, false
	}
	nerr := len(l.errs)
	l.stepOptions(f, &p, timeout)
	st := &p.step
	switch act {
	case "send":
		st.Kind = SendStep
		st.Payload, _ = l.str(f["send"], "send")
		if v := f["nowait"]; v != nil {
			st.NoWait, _ = l.boolean(v, "nowait")
		}
	case "expect":
		l.expect(f["expect"], st)
	case "wait":
		st.Kind = WaitStep
		st.Duration, _ = l.duration(f["wait"], "wait")
	case "fault":
		l.fault(f["fault"], st)
	case "heap":
		st.Kind = HeapStep
		st.Commands, _ = l.integer(f["heap"], "heap", 1, 100000)
	case "repeat":
		l.repeat(n, f, &p, depth, nerr)
	case "random":
		l.random(n, f, &p)
	}
	return p, len(l.errs) == nerr
}

// action is the one action key (send, expect, ...) of step n.
func (l *loader) action(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.MappingNode {
		l.errf(n, "a step must be a mapping like `send: on` or `expect: {led: 1}`, not %s", kindName(n))
		return "", false
	}
	var found []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(actions, n.Content[i].Value) {
			found = append(found, n.Content[i].Value)
		}
	}
	if len(found) != 1 {
		l.errf(n, "a step needs exactly one of %s (found: %s)", strings.Join(actions, ", "), strings.Join(found, ", "))
		return "", false
	}
	return found[0], true
}

// stepOptions reads the keys several actions share (timeout, channel, qos,
// burst) into p.
func (l *loader) stepOptions(f map[string]*yaml.Node, p *proto, timeout time.Duration) {
	st := &p.step
	st.Line, st.RC, st.Level = p.node.Line, -1, -1
	st.Timeout = timeout
	if v := f["timeout"]; v != nil {
		st.Timeout, _ = l.duration(v, "timeout")
	}
	if v := f["channel"]; v != nil {
		if s, ok := l.oneOf(v, "channel", "creq", "topic", "http", "property"); ok {
			st.Channel = Channel(s)
		}
	}
	if v := f["qos"]; v != nil {
		st.QoS, _ = l.integer(v, "qos", 0, 1)
	}
	if v := f["burst"]; v != nil {
		p.burst, _ = l.boolean(v, "burst")
	}
}

// fault parses the value of a fault step (n) into st, checking that the
// scenario's profile and requirements allow it.
func (l *loader) fault(n *yaml.Node, st *Step) {
	st.Kind = FaultStep
	opts := make([]string, len(Faults))
	for i, k := range Faults {
		opts[i] = string(k)
	}
	s, ok := l.oneOf(n, "fault", opts...)
	st.Fault = FaultKind(s)
	if ok && l.sc.Profile == "tutorial" && st.Fault != PowerCycle {
		l.errf(n, "fault %s: the tutorial's mqtt.py does not reconnect; only power_cycle works with profile tutorial", s)
	}
	if ok && st.Fault.VirtualOnly() && !l.sc.Needs(Virtual) {
		l.errf(n, "fault %s needs a virtual board: add `requires: [virtual]` to the scenario", s)
	}
}

// repeat parses a repeat step (n, its fields f) into p; nerr is the error
// count before the step.
func (l *loader) repeat(n *yaml.Node, f map[string]*yaml.Node, p *proto, depth, nerr int) {
	p.count, _ = l.integer(f["repeat"], "repeat", 1, MaxSteps)
	v := f["steps"]
	if v == nil {
		l.errf(n, "repeat: missing steps")
		return
	}
	p.kids = l.steps(v, p.step.Timeout, depth+1)
	if len(p.kids) == 0 && len(l.errs) == nerr {
		l.errf(v, "repeat: the steps list is empty")
	}
}

// random parses a random step (n, its fields f) into p.
func (l *loader) random(n *yaml.Node, f map[string]*yaml.Node, p *proto) {
	p.random = true
	p.count, _ = l.integer(f["random"], "random", 1, MaxSteps)
	if v := f["seed"]; v == nil {
		l.errf(n, "random: missing seed (a fixed seed makes the run repeatable)")
	} else if s, ok := l.str(v, "seed"); ok {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			l.errf(v, "seed: %q is not a non-negative whole number", s)
		}
		p.seed = seed
	}
	p.mix = []string{"on", "off", "toggle", "junk"}
	if v := f["mix"]; v != nil {
		p.mix = l.mix(v)
	}
}

// mix parses a random step's mix: a non-empty list of on, off, toggle and
// junk.
func (l *loader) mix(v *yaml.Node) []string {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		l.errf(v, "mix must be a non-empty list of on, off, toggle, junk")
		return nil
	}
	var mix []string
	for _, m := range v.Content {
		if s, ok := l.oneOf(m, "mix", "on", "off", "toggle", "junk"); ok {
			mix = append(mix, s)
		}
	}
	return mix
}

// expect parses the value of an expect step.
func (l *loader) expect(n *yaml.Node, st *Step) {
	if n.Kind == yaml.ScalarNode && n.Value == "ignored" {
		st.Kind = ExpectIgnoredStep
		return
	}
	f, ok := l.fields(n, "expect", "led", "ignored", "echo", "event", "broker", "rc", "reason")
	if !ok {
		return
	}
	var what []string
	for _, k := range []string{"led", "ignored", "echo", "event", "broker"} {
		if f[k] != nil {
			what = append(what, k)
		}
	}
	if len(what) != 1 {
		l.errf(n, "expect needs exactly one of led, ignored, echo, event, broker (found: %s)", strings.Join(what, ", "))
		return
	}
	if v := f["rc"]; v != nil {
		if v.Kind == yaml.ScalarNode && v.Value == "bad_credentials" {
			st.RC = RCBadCredentials // the platform's code: legacy 4, studio 5
		} else if _, ok := l.str(v, "rc"); ok {
			if n, err := strconv.Atoi(v.Value); err != nil || n < 0 || n > 255 {
				l.errf(v, "rc: %q is not a CONNACK code 0..255 or bad_credentials (the platform's code for wrong credentials)", v.Value)
			} else {
				st.RC = n
			}
		}
	}
	if f["reason"] != nil {
		st.Reason, _ = l.str(f["reason"], "reason")
	}
	onlyWith := func(key, ok string) {
		if f[key] != nil && what[0] != ok {
			l.errf(f[key], "expect: %s only goes with %s", key, ok)
		}
	}
	switch what[0] {
	case "led":
		st.Kind = ExpectLEDStep
		st.Level, _ = l.integer(f["led"], "led", 0, 1)
	case "ignored":
		st.Kind = ExpectIgnoredStep
		if b, ok := l.boolean(f["ignored"], "ignored"); ok && !b {
			l.errf(f["ignored"], "expect: ignored: false means nothing; use expect: {led: N}")
		}
	case "echo":
		st.Kind = ExpectEchoStep
		if s, ok := l.str(f["echo"], "echo"); ok {
			re, err := regexp.Compile(s)
			if err != nil {
				l.errf(f["echo"], "echo: bad regular expression: %v", err)
			}
			st.Pattern = re
		}
	case "event":
		st.Kind = ExpectEventStep
		if s, ok := l.str(f["event"], "event"); ok {
			k, known := echo.ParseKind(s)
			switch {
			case !known || k == echo.Other || k == echo.Malformed:
				l.errf(f["event"], "event: %q is not an echo event (boot, wifi_up, wifi_down, mqtt_up, mqtt_refused, mqtt_down, led, ignored, received)", s)
			case !l.prof.Emits(k):
				l.errf(f["event"], "event: profile %s never prints %s", l.prof.Name(), k)
			}
			st.Event = k
		}
	case "broker":
		st.Kind = ExpectBrokerStep
		s, _ := l.oneOf(f["broker"], "broker", "connected", "refused", "disconnected", "kicked")
		st.Broker = BrokerEvent{Kind: s, RC: st.RC}
	}
	if f["rc"] != nil && what[0] != "event" && what[0] != "broker" {
		l.errf(f["rc"], "expect: rc only goes with event or broker")
	}
	onlyWith("reason", "event")
}

// expander flattens protos and runs the model over them.
type expander struct {
	l        *loader
	steps    []Step
	model    Model
	lastSend *Step
	offline  *yaml.Node // the wifi_down in effect
	failed   bool       // stop after the first semantic error (a repeat would repeat it)
}

func (x *expander) errf(n *yaml.Node, format string, args ...any) {
	if !x.failed {
		x.l.errf(n, format, args...)
		x.failed = true
	}
}

func (x *expander) add(n *yaml.Node, st Step) bool {
	if len(x.steps) >= MaxSteps {
		x.errf(n, "the scenario expands to more than %d steps", MaxSteps)
		return false
	}
	x.steps = append(x.steps, st)
	return true
}

func (x *expander) expand(ps []proto, burst bool) {
	for _, p := range ps {
		if x.failed {
			return
		}
		switch {
		case p.random:
			rng := rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15))
			for range p.count {
				pick := p.mix[rng.IntN(len(p.mix))]
				if pick == "junk" {
					pick = JunkPayloads[rng.IntN(len(JunkPayloads))]
				}
				st := p.step
				st.Kind, st.Payload = SendStep, pick
				if !x.leaf(p.node, st, burst || p.burst) {
					return
				}
			}
			if p.burst && !burst {
				x.add(p.node, Step{Kind: SyncStep, Line: p.step.Line, Timeout: p.step.Timeout,
					Before: x.model.Level, After: x.model.Level, Level: -1, RC: -1})
			}
		case p.count > 0:
			for range p.count {
				x.expand(p.kids, burst || p.burst)
				if x.failed {
					return
				}
			}
			if p.burst && !burst {
				x.add(p.node, Step{Kind: SyncStep, Line: p.step.Line, Timeout: p.step.Timeout,
					Before: x.model.Level, After: x.model.Level, Level: -1, RC: -1})
			}
		default:
			if !x.leaf(p.node, p.step, burst) {
				return
			}
		}
	}
}

// leaf checks one concrete step against the model and appends it.
func (x *expander) leaf(n *yaml.Node, st Step, burst bool) bool {
	sc := x.l.sc
	st.Before = x.model.Level
	switch st.Kind {
	case SendStep:
		if sc.WrongCredentials {
			x.errf(n, "send: with credentials: wrong the board never logs in, so nothing can be sent")
			return false
		}
		if st.Channel == "" {
			st.Channel = sc.Channel
		}
		if st.QoS == 1 && (st.Channel == Topic || st.Channel == Property) {
			x.errf(n, "send: qos 1 needs channel creq or http (a command the broker keeps); a %s send is never kept for an offline device", st.Channel)
			return false
		}
		if st.Channel == Property && st.Payload != "on" && st.Payload != "off" {
			x.errf(n, "send %s via property: only on and off (the property led is a bool, set to true or false); toggle and junk have no property value", ShowPayload(st.Payload))
			return false
		}
		if burst {
			st.NoWait = true
		}
		if x.offline != nil && (!st.NoWait || st.QoS != 1) {
			x.errf(n, "send while Wi-Fi is down (wifi_down on line %d) must have `qos: 1` and `nowait: true`: it is delivered at the next login", x.offline.Line)
			return false
		}
		st.After, st.Command = x.model.Apply(st.Payload)
		x.lastSend = &st
	case ExpectLEDStep:
		if x.offline != nil {
			x.errf(n, "expect led while Wi-Fi is down (wifi_down on line %d): put it after wifi_up", x.offline.Line)
			return false
		}
		if st.Level != x.model.Level {
			why := "after power-up"
			if x.lastSend != nil {
				why = fmt.Sprintf("after %s on line %d", x.lastSend, x.lastSend.Line)
			}
			x.errf(n, "expect led %d contradicts the model: the LED is %d here (%s)", st.Level, x.model.Level, why)
			return false
		}
	case ExpectIgnoredStep:
		if x.offline != nil {
			x.errf(n, "expect ignored while Wi-Fi is down (wifi_down on line %d): put it after wifi_up", x.offline.Line)
			return false
		}
		if x.lastSend == nil {
			x.errf(n, "expect ignored: there is no send before it")
			return false
		}
		if x.lastSend.Command {
			x.errf(n, "expect ignored contradicts the model: the last send (line %d) is the command %q", x.lastSend.Line, x.lastSend.Payload)
			return false
		}
	case FaultStep:
		switch {
		case st.Fault == WifiDown && x.offline != nil:
			x.errf(n, "wifi_down: Wi-Fi is already down (wifi_down on line %d)", x.offline.Line)
			return false
		case st.Fault == WifiUp && x.offline == nil:
			x.errf(n, "wifi_up without a wifi_down before it")
			return false
		case st.Fault == WifiDown:
			x.offline = n
		case st.Fault == WifiUp:
			x.offline = nil
		case x.offline != nil:
			x.errf(n, "fault %s while Wi-Fi is down (wifi_down on line %d): bring it up first", st.Fault, x.offline.Line)
			return false
		case st.Fault == PowerCycle:
			x.model.PowerUp()
		}
	case HeapStep:
		if sc.WrongCredentials || x.offline != nil {
			x.errf(n, "heap: the measurement sends commands, so the board must be logged in (no wrong credentials, not while Wi-Fi is down)")
			return false
		}
		// The measurement ends with a soft reset: the firmware boots again
		// with the LED off.
		x.model.PowerUp()
		x.lastSend = nil
	}
	st.After = x.model.Level
	if st.Kind == ExpectLEDStep {
		st.Level = st.After
	}
	return x.add(n, st)
}
