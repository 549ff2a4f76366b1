package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/onenet-hil/hil/internal/child"
)

// The fleet can run in a child process so that a broker measured in the
// parent process is not charged for the fleet's memory and CPU. Parent and
// child talk JSON lines: the parent writes the Options first, then
// requests; the child answers with reports. EOF on the child's stdin stops
// the fleet.

type request struct {
	Drop  string `json:"drop,omitempty"`
	Fault *struct {
		Device string `json:"device"`
		Fault  Fault  `json:"fault"`
	} `json:"fault,omitempty"`
	Usage bool   `json:"usage,omitempty"`
	Seq   uint64 `json:"seq,omitempty"` // echoed in the ack: a late ack never answers a later request
}

type report struct {
	Kind   string      `json:"kind"` // login, event, usage, error
	Login  *LoginStats `json:"login,omitempty"`
	Event  *Event      `json:"event,omitempty"`
	Usage  *Usage      `json:"usage,omitempty"`
	Counts *Counters   `json:"counters,omitempty"`
	Error  string      `json:"error,omitempty"`
	Seq    uint64      `json:"seq,omitempty"` // of the request an ack answers
}

// Usage is a process's resource use.
type Usage struct {
	CPU   time.Duration `json:"cpu"`    // user + system since the process started
	RSSKB int64         `json:"rss_kb"` // resident set now
	// BaseRSSKB is the worker's resident set before its fleet logged in,
	// so RSSKB-BaseRSSKB is what the devices cost.
	BaseRSSKB int64 `json:"base_rss_kb,omitempty"`
}

// SelfUsage measures the calling process.
func SelfUsage() Usage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return Usage{
		CPU:   time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		RSSKB: ProcRSSKB(os.Getpid()),
	}
}

// ProcRSSKB reads VmRSS of a process from /proc, in KiB; -1 if unknown.
func ProcRSSKB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// Serve runs a fleet for a parent process: it reads the Options from the
// first line of r, logs the fleet in, reports on w, and serves requests
// until r ends.
func Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	in := bufio.NewReaderSize(r, 1<<16)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("fleet worker: reading options: %w", err)
	}
	var opts Options
	if err := json.Unmarshal(line, &opts); err != nil {
		return fmt.Errorf("fleet worker: options: %w", err)
	}
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(rep report) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(rep)
	}
	opts.OnEvent = func(e Event) { send(report{Kind: "event", Event: &e}) }
	base := ProcRSSKB(os.Getpid())
	f, err := Start(ctx, opts)
	if err != nil {
		send(report{Kind: "error", Error: err.Error()})
		return err
	}
	defer f.Close()
	lg := f.Logins()
	u := SelfUsage()
	u.BaseRSSKB = base
	send(report{Kind: "login", Login: &lg, Usage: &u})
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return nil // the parent is done
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			send(report{Kind: "error", Error: "bad request: " + err.Error()})
			continue
		}
		switch {
		case req.Drop != "":
			send(ack(req.Seq, f.Drop(req.Drop)))
		case req.Fault != nil:
			send(ack(req.Seq, f.Inject(req.Fault.Device, req.Fault.Fault)))
		case req.Usage:
			u := SelfUsage()
			u.BaseRSSKB = base
			c := f.Counters()
			send(report{Kind: "usage", Usage: &u, Counts: &c})
		}
	}
}

// ack answers a request once it has taken effect in the worker, so that
// what the parent does next (say, send the command a fault waits for)
// cannot overtake it.
func ack(seq uint64, err error) report {
	if err != nil {
		return report{Kind: "ack", Seq: seq, Error: err.Error()}
	}
	return report{Kind: "ack", Seq: seq}
}

// Remote is a fleet running in a child process started by StartRemote.
type Remote struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	logins LoginStats
	login  Usage
	mu     sync.Mutex // serialises requests
	usage  chan report
	acks   chan report
	seq    uint64        // of the last request sent (under mu)
	ended  chan struct{} // closed when the worker's output ends
	done   chan error
	errMu  sync.Mutex
	errs   []string
	closer sync.Once
	closed error
}

// StartRemote starts argv as a fleet worker (a program that calls Serve
// with its stdin and stdout), hands it opts and waits until the fleet has
// logged in. opts.OnEvent is called in this process for each event.
func StartRemote(ctx context.Context, argv []string, opts Options) (*Remote, error) {
	if len(argv) == 0 {
		return nil, errors.New("fleet: no worker command")
	}
	cmd, stdin, stdout, err := child.Start(argv, nil)
	if err != nil {
		return nil, fmt.Errorf("fleet: starting worker: %w", err)
	}
	r := &Remote{cmd: cmd, stdin: stdin, usage: make(chan report, 1), acks: make(chan report, 1), ended: make(chan struct{}), done: make(chan error, 1)}
	cfg, err := json.Marshal(opts)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	if _, err := stdin.Write(append(cfg, '\n')); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("fleet: worker: %w", err)
	}
	login := make(chan report, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 64<<20)
		for sc.Scan() {
			var rep report
			if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
				r.addErr("unreadable worker report: " + err.Error())
				continue
			}
			switch rep.Kind {
			case "login":
				login <- rep
			case "event":
				if opts.OnEvent != nil && rep.Event != nil {
					opts.OnEvent(*rep.Event)
				}
			case "usage":
				r.usage <- rep
			case "ack":
				select {
				case r.acks <- rep:
				default: // nobody waits (its call timed out): never block the reader
				}
			case "error":
				r.addErr(rep.Error)
			}
		}
		close(r.ended)
		r.done <- cmd.Wait()
		close(login)
	}()
	select {
	case rep, ok := <-login:
		if !ok || rep.Login == nil {
			err := <-r.done
			return nil, fmt.Errorf("fleet worker ended before logging in: %v %s", err, r.errText())
		}
		r.logins = *rep.Login
		if rep.Usage != nil {
			r.login = *rep.Usage
		}
		return r, nil
	case <-ctx.Done():
		r.Close()
		return nil, ctx.Err()
	}
}

func (r *Remote) addErr(s string) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, s)
	}
}

func (r *Remote) errText() string {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return strings.Join(r.errs, "; ")
}

// Logins reports how the fleet's login went.
func (r *Remote) Logins() LoginStats { return r.logins }

// PID is the worker's process id.
func (r *Remote) PID() int { return r.cmd.Process.Pid }

func (r *Remote) request(req request) error {
	b, _ := json.Marshal(req)
	_, err := r.stdin.Write(append(b, '\n'))
	return err
}

// Drop closes one device's connection in the worker (fault injection).
func (r *Remote) Drop(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.call(request{Drop: id})
}

// Inject sets a fault on one device in the worker.
func (r *Remote) Inject(id string, fault Fault) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var req request
	req.Fault = &struct {
		Device string `json:"device"`
		Fault  Fault  `json:"fault"`
	}{id, fault}
	return r.call(req)
}

// call sends a request and waits, bounded, until the worker has carried it
// out. The caller holds r.mu.
func (r *Remote) call(req request) error {
	r.seq++
	req.Seq = r.seq
	if err := r.request(req); err != nil {
		return err
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case rep := <-r.acks:
			if rep.Seq != req.Seq {
				continue // a late answer to an earlier request that timed out
			}
			if rep.Error != "" {
				return errors.New(rep.Error)
			}
			return nil
		case <-r.ended:
			return fmt.Errorf("fleet worker ended (%s)", r.errText())
		case <-timeout.C:
			return fmt.Errorf("fleet worker did not answer in 10s (%s)", r.errText())
		}
	}
}

// Usage asks the worker for its resource use and counters.
func (r *Remote) Usage(timeout time.Duration) (Usage, Counters, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.request(request{Usage: true}); err != nil {
		return Usage{}, Counters{}, err
	}
	select {
	case rep := <-r.usage:
		return *rep.Usage, *rep.Counts, nil
	case <-time.After(timeout):
		return Usage{}, Counters{}, fmt.Errorf("fleet worker did not report its usage within %v", timeout)
	}
}

// Close stops the worker (its devices disconnect) and waits for it.
func (r *Remote) Close() error {
	r.closer.Do(func() { r.closed = r.close() })
	return r.closed
}

func (r *Remote) close() error {
	r.stdin.Close()
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("fleet worker: %v %s", err, r.errText())
		}
		return nil
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		return errors.New("fleet worker did not stop within 30 s; killed")
	}
}
