package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// process is one life of the board: a runtime process between two resets.
// fd 0/1 are the serial line, fd 2 diagnostics, fd 3 a control socket with JSON lines.
type process struct {
	cmd    *exec.Cmd
	stdin  *os.File
	ctl    net.Conn
	up     chan struct{} // closed when the runtime reports it is running
	exited chan struct{} // closed when the process has exited and its output is relayed
	stop   chan struct{} // closed on kill: output still in the pipe is discarded
	ctlEOF chan struct{} // closed when the control socket is drained
	err    error

	writeMu  sync.Mutex
	stopOnce sync.Once
}

func startRuntime(b *Board, args string) (*process, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sim: control socket: %w", err)
	}
	ctlParent := os.NewFile(uintptr(fds[0]), "sim-control")
	ctlChild := os.NewFile(uintptr(fds[1]), "sim-control-child")
	defer ctlChild.Close()
	ctl, err := net.FileConn(ctlParent)
	ctlParent.Close()
	if err != nil {
		return nil, fmt.Errorf("sim: control socket: %w", err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		inR.Close()
		inW.Close()
		return nil, err
	}

	cmd := exec.Command(b.opts.Python, "-I", "-S", "-B", filepath.Join(b.ownDir, "board.py"), args)
	cmd.Stdin = inR
	cmd.Stdout = outW
	cmd.Stderr = b.opts.Log
	cmd.ExtraFiles = []*os.File{ctlChild}
	cmd.Dir = b.flash
	// Own process group: a terminal's Ctrl-C (for `hil sim`) must not reach the board directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		ctl.Close()
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("sim: start board runtime: %w", err)
	}
	p := &process{cmd: cmd, stdin: inW, ctl: ctl, up: make(chan struct{}), exited: make(chan struct{}),
		stop: make(chan struct{}), ctlEOF: make(chan struct{})}

	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		b.relayProcessOutput(p, outR)
		outR.Close()
	}()
	go p.readControl(b)
	go func() {
		<-relayed
		p.err = cmd.Wait()
		close(p.exited)
		b.mu.Lock()
		unexpected := b.proc == p
		b.mu.Unlock()
		if unexpected {
			b.logf("board runtime exited: %v", p.err)
		}
	}()
	return p, nil
}

// relayProcessOutput relays until EOF; after kill the rest is read and discarded.
func (b *Board) relayProcessOutput(p *process, r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		pieces := [][]byte{buf[:n]}
		if b.tx != nil {
			pieces = chunks(buf[:n], paceChunk)
		}
		for _, chunk := range pieces {
			if len(chunk) == 0 {
				continue
			}
			select {
			case <-p.stop:
				continue
			default:
			}
			b.tx.wait(len(chunk))
			b.writeMaster(chunk)
		}
		if err != nil {
			return
		}
	}
}

type controlEvent struct {
	Ev    string `json:"ev"`
	Pin   int    `json:"pin"`
	Value int    `json:"value"`
	T     int64  `json:"t"`
	Cause string `json:"cause"`
}

func (p *process) readControl(b *Board) {
	defer close(p.ctlEOF)
	sc := bufio.NewScanner(p.ctl)
	upOnce := sync.Once{}
	for sc.Scan() {
		var ev controlEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			b.logf("bad control message %q: %v", sc.Text(), err)
			continue
		}
		switch ev.Ev {
		case "up":
			upOnce.Do(func() { close(p.up) })
		case "pin":
			b.pins.set(ev.Pin, ev.Value, time.Unix(0, ev.T))
		case "reset":
			cause := causeSoft
			if ev.Cause == "wdt" {
				cause = causeWDT
			}
			// machine.reset() or the watchdog: a hard reset done from outside, like the chip's.
			go func() {
				b.mu.Lock()
				current := b.proc == p
				b.mu.Unlock()
				if current {
					if err := b.restart(context.Background(), cause); err != nil {
						b.logf("reset: %v", err)
					}
				}
			}()
		}
	}
}

func (p *process) write(data []byte) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	_, _ = p.stdin.Write(data) // a dying board loses its input, like a chip in reset
}

func (p *process) command(msg map[string]any) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	_, err = p.ctl.Write(append(data, '\n'))
	return err
}

// kill ends the process at once (a reset cuts the chip off mid-output) and waits for it.
func (p *process) kill() {
	p.stopOnce.Do(func() { close(p.stop) })
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	<-p.ctlEOF // no late pin change from this life may follow the reset
	p.stdin.Close()
	p.ctl.Close()
}
