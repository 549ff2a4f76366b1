package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MosquittoUser is one password-file entry.
type MosquittoUser struct {
	Name, Password string
}

// MosquittoOptions describe a private Mosquitto for one bench run.
type MosquittoOptions struct {
	Binary string // default: mosquitto on PATH, else /usr/sbin/mosquitto
	// Users go into the password file. Devices log in as their product ID
	// with the product's key (a password file holds one password per user
	// name, and OneNET accepts the product key as a device password).
	Users []MosquittoUser
	// Controller is the bench's own user: it may publish every command
	// topic and read every reply topic. Devices get, by ACL pattern on
	// their client id, read on CommandPrefix+id and write on
	// ReplyPrefix+id, and nothing else.
	Controller    string
	CommandPrefix string
	ReplyPrefix   string
	// NoDelay sets set_tcp_nodelay (Mosquitto's best latency setting; its
	// default adds Nagle's 40 ms to some replies).
	NoDelay bool
}

// Mosquitto is a running private Mosquitto broker.
type Mosquitto struct {
	Addr string
	dir  string
	cmd  *exec.Cmd
	done chan error
	mu   sync.Mutex
	log  []string // last lines of its log, for errors
}

// MosquittoBinary finds the mosquitto executable.
func MosquittoBinary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", errors.New("mosquitto not found (Debian: apt-get install mosquitto)")
}

// passwordLine is a Mosquitto password-file entry in its "$6$" form:
// base64 salt, then base64 of SHA-512(password + salt).
func passwordLine(user, password string) (string, error) {
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := sha512.New()
	h.Write([]byte(password))
	h.Write(salt)
	return fmt.Sprintf("%s:$6$%s$%s\n", user, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(h.Sum(nil))), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ":\n\r\t #+")
}

// StartMosquitto writes a config, password file and ACL into a temporary
// directory, starts Mosquitto on a free loopback port and waits until it
// accepts connections.
func StartMosquitto(ctx context.Context, o MosquittoOptions) (*Mosquitto, error) {
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = MosquittoBinary(); err != nil {
			return nil, err
		}
	}
	if !validName(o.Controller) {
		return nil, fmt.Errorf("mosquitto: invalid controller user %q", o.Controller)
	}
	dir, err := os.MkdirTemp("", "hil-mosquitto-")
	if err != nil {
		return nil, err
	}
	port, err := writeMosquittoFiles(dir, o)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	m := &Mosquitto{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, done: make(chan error, 1)}
	running, err := m.start(bin)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := m.waitRunning(ctx, running); err != nil {
		return nil, err
	}
	return m, nil
}

// writeMosquittoFiles writes the password file, the ACL and the config
// for a free loopback port into dir, and returns the port.
func writeMosquittoFiles(dir string, o MosquittoOptions) (int, error) {
	var pw strings.Builder
	for _, u := range o.Users {
		if !validName(u.Name) {
			return 0, fmt.Errorf("mosquitto: invalid user name %q", u.Name)
		}
		line, err := passwordLine(u.Name, u.Password)
		if err != nil {
			return 0, err
		}
		pw.WriteString(line)
	}
	acl := fmt.Sprintf("user %s\ntopic readwrite %s#\ntopic readwrite %s#\n\npattern read %s%%c\npattern write %s%%c\n",
		o.Controller, o.CommandPrefix, o.ReplyPrefix, o.CommandPrefix, o.ReplyPrefix)
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	for name, body := range map[string]string{"passwd": pw.String(), "acl": acl, "mosquitto.conf": mosquittoConf(dir, port, o.NoDelay)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return 0, err
		}
	}
	return port, nil
}

// mosquittoConf is the config: one loopback listener, logins by password
// file and ACL only, no persistence, logs on stderr.
func mosquittoConf(dir string, port int, noDelay bool) string {
	conf := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous false",
		"password_file " + filepath.Join(dir, "passwd"),
		"acl_file " + filepath.Join(dir, "acl"),
		"persistence false",
		"connection_messages false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information", // says "running" once listening
		"max_connections -1",
	}
	if noDelay {
		conf = append(conf, "set_tcp_nodelay true")
	}
	if os.Geteuid() == 0 {
		// As root Mosquitto would switch to its own user, which cannot
		// read our 0600 files.
		conf = append(conf, "user root")
	}
	return strings.Join(conf, "\n") + "\n"
}

// start starts the broker with the config in m.dir. Its stderr feeds m.log
// until it exits (then m.done gets the exit); running is closed when it
// says it is running.
func (m *Mosquitto) start(bin string) (running <-chan struct{}, err error) {
	m.cmd = exec.Command(bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	stderr, err := m.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting mosquitto: %w", err)
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			m.mu.Lock()
			m.log = append(m.log, line)
			if len(m.log) > 20 {
				m.log = m.log[1:]
			}
			m.mu.Unlock()
			if strings.Contains(line, " running") {
				once.Do(func() { close(up) })
			}
		}
		io.Copy(io.Discard, stderr)
		m.done <- m.cmd.Wait()
	}()
	return up, nil
}

// waitRunning waits, at most 10 s, until the broker says it is running;
// if it does not, it closes the broker.
func (m *Mosquitto) waitRunning(ctx context.Context, running <-chan struct{}) error {
	select {
	case <-running:
		return nil
	case err := <-m.done:
		m.done <- err
		m.Close()
		return fmt.Errorf("mosquitto exited at start (%v): %s", err, m.lastLog())
	case <-time.After(10 * time.Second):
		m.Close()
		return fmt.Errorf("mosquitto did not report running within 10 s: %s", m.lastLog())
	case <-ctx.Done():
		m.Close()
		return ctx.Err()
	}
}

func (m *Mosquitto) lastLog() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.log, " | ")
}

// PID is the broker's process id.
func (m *Mosquitto) PID() int { return m.cmd.Process.Pid }

// Close stops the broker and removes its directory.
func (m *Mosquitto) Close() error {
	defer os.RemoveAll(m.dir)
	if m.cmd.Process == nil {
		return nil
	}
	m.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	return nil
}

// ProcCPU reads a process's user+system CPU time from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable /proc stat times")
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}
