// Command devstack runs the demo stack behind `make run`: the demo sender,
// sendguard and Envoy as child processes, each child's output prefixed per
// line on stdout. Once all three are ready it prints curls to try, then runs
// until SIGINT or SIGTERM, or until a child exits.
//
//	devstack -envoy PATH -sendguard PATH -demo-sender PATH \
//		-config cmd/devstack/sendguard.yaml -policies policies -envoy-config envoy/sidecar.yaml
//
// sendguard serves the policy directory given (the repository's policies/
// by default, not the copy embedded in the binary) and watches it and the
// config: an edit saved there applies within reload.watch_interval, or is
// refused and logged while the running policies stay.
//
// The addresses are fixed and must match both configs: Envoy on :10000 (admin
// 127.0.0.1:9901), sendguard on 127.0.0.1:9191 (gRPC) and 127.0.0.1:9192
// (admin), the demo sender on 127.0.0.1:8080. devstack exits non-zero when
// the stack does not come up within 30 s or a child dies on its own.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

// The stack's fixed addresses; envoy/sidecar.yaml and
// cmd/devstack/sendguard.yaml use the same.
const (
	envoyURL      = "http://127.0.0.1:10000"
	envoyAdminURL = "http://127.0.0.1:9901"
	grpcAddr      = "127.0.0.1:9191"
	adminURL      = "http://127.0.0.1:9192"
	senderAddr    = "127.0.0.1:8080"
	adminToken    = "demo-admin-token"
)

// stackAddrs are the addresses the stack listens on; each must be free
// before it starts.
var stackAddrs = []string{"127.0.0.1:10000", "127.0.0.1:9901", grpcAddr, "127.0.0.1:9192", senderAddr}

const (
	startupTimeout = 30 * time.Second // for all three children to be ready
	pollInterval   = 100 * time.Millisecond
	stopTimeout    = 5 * time.Second // from SIGTERM to SIGKILL
)

type flags struct {
	envoy, sendguard, sender string // executables
	config, envoyConfig      string
	policies                 string // served by sendguard; "" for the embedded policies
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.envoy, "envoy", "envoy", "Envoy executable")
	fs.StringVar(&f.sendguard, "sendguard", "./bin/sendguard", "sendguard executable")
	fs.StringVar(&f.sender, "demo-sender", "./bin/demo-sender", "demo-sender executable")
	fs.StringVar(&f.config, "config", "cmd/devstack/sendguard.yaml", "sendguard config file")
	fs.StringVar(&f.policies, "policies", "policies", `Rego policy directory sendguard serves and watches ("" for the policies embedded in the binary)`)
	fs.StringVar(&f.envoyConfig, "envoy-config", "envoy/sidecar.yaml", "Envoy config file")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkFree(stackAddrs); err != nil {
		return err
	}
	out := &lockedWriter{w: stdout}
	s := newStack(ctx, out)
	err = s.up(f)
	if err == nil {
		io.WriteString(out, banner()+policiesBanner(f.policies))
		<-s.live.Done()
		err = context.Cause(s.live)
		if _, died := errors.AsType[*exitError](err); !died {
			fmt.Fprintf(out, "[devstack] stopping: %v\n", err)
			err = nil
		}
	}
	s.stop()
	return err
}

// checkFree fails when something already listens on one of addrs, such as
// another devstack.
func checkFree(addrs []string) error {
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return fmt.Errorf("%s is already in use; is another devstack or Envoy running?", addr)
		}
	}
	return nil
}

// stack is the running children.
type stack struct {
	out      io.Writer
	children []*child
	// live ends when the context given to newStack does or, with an
	// *exitError as its cause, when the first child exits.
	live   context.Context
	onExit context.CancelCauseFunc
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
}

// exitError reports that a child exited on its own.
type exitError struct {
	name string
	err  error // from exec.Cmd.Wait
}

func (e *exitError) Error() string {
	if e.err == nil {
		return e.name + " exited unexpectedly with status 0"
	}
	return fmt.Sprintf("%s exited unexpectedly: %v", e.name, e.err)
}

func (e *exitError) Unwrap() error { return e.err }

func newStack(ctx context.Context, out io.Writer) *stack {
	live, onExit := context.WithCancelCause(ctx)
	return &stack{out: out, live: live, onExit: onExit}
}

// up starts the sender, sendguard and Envoy in turn, each once the one before
// is ready, and waits for Envoy to be ready.
func (s *stack) up(f flags) error {
	ctx, cancel := context.WithTimeoutCause(s.live, startupTimeout, fmt.Errorf("timed out after %s", startupTimeout))
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, c := range []struct {
		name  string
		argv  []string
		ready func(context.Context) error
	}{
		{"sender", []string{f.sender, "-listen", senderAddr}, tcpReady(senderAddr)},
		{"sendguard", sendguardArgv(f), httpReady(client, adminURL+"/readyz")},
		{"envoy", []string{f.envoy, "-c", f.envoyConfig, "--log-level", "warn"}, httpReady(client, envoyAdminURL+"/ready")},
	} {
		if err := s.start(c.name, c.argv); err != nil {
			return err
		}
		if err := waitReady(ctx, c.name, pollInterval, c.ready); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "[devstack] %s is ready\n", c.name)
	}
	return nil
}

// sendguardArgv is the command line of sendguard in the stack.
func sendguardArgv(f flags) []string {
	argv := []string{f.sendguard, "serve", "--config", f.config}
	if f.policies != "" {
		argv = append(argv, "--policies", f.policies)
	}
	return argv
}

// start starts argv as the child name, its output prefixed with "[name] ".
func (s *stack) start(name string, argv []string) error {
	fmt.Fprintf(s.out, "[devstack] starting %s: %s\n", name, strings.Join(argv, " "))
	w := &lineWriter{out: s.out, prefix: "[" + name + "] "}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // should a grandchild hold the output open
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	s.children = append(s.children, c)
	go func() {
		err := cmd.Wait()
		w.Flush()
		close(c.done)
		s.onExit(&exitError{name: name, err: err})
	}()
	return nil
}

// stop sends SIGTERM to every child still running and SIGKILL to those still
// running stopTimeout later, and returns once all have exited.
func (s *stack) stop() {
	for _, c := range s.children {
		s.signal(c, syscall.SIGTERM)
	}
	expired := make(chan struct{})
	t := time.AfterFunc(stopTimeout, func() { close(expired) })
	defer t.Stop()
	for _, c := range s.children {
		select {
		case <-c.done:
		case <-expired:
			fmt.Fprintf(s.out, "[devstack] %s did not stop within %s; killing it\n", c.name, stopTimeout)
			s.signal(c, syscall.SIGKILL)
			<-c.done
		}
	}
}

// signal sends sig to c's process group unless c has exited.
func (s *stack) signal(c *child, sig syscall.Signal) {
	select {
	case <-c.done:
		return
	default:
	}
	if err := signalGroup(c.cmd.Process, sig); err != nil && !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH) {
		fmt.Fprintf(s.out, "[devstack] signal %s: %v\n", c.name, err)
	}
}

// waitReady calls check every interval until it returns nil. When ctx ends
// first, it fails naming what did not become ready, why (ctx's cause) and
// the error of the last check that ctx did not cut short.
func waitReady(ctx context.Context, what string, interval time.Duration, check func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if last == nil || ctx.Err() == nil { // keep the error of a check ctx did not cut short
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready: %w (last check: %v)", what, context.Cause(ctx), last)
		case <-t.C:
		}
	}
}

// httpReady checks that GET url answers 200.
func httpReady(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err // names the method and URL already
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// tcpReady checks that addr accepts TCP connections.
func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s: %w", addr, err)
		}
		return c.Close()
	}
}

// lockedWriter serialises writes to w, so that lines from several children
// do not interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// maxLine is the longest line a lineWriter holds back; longer ones are
// written in pieces.
const maxLine = 64 << 10

// lineWriter writes every line written to it to out, prefixed, in one Write
// per line. It never fails: a child must not die because devstack's stdout
// did.
type lineWriter struct {
	out    io.Writer
	prefix string

	mu  sync.Mutex
	buf []byte // the incomplete last line
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	rest := l.buf
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(rest) < maxLine {
				break
			}
			i = maxLine - 1
		}
		l.emit(rest[:i+1])
		rest = rest[i+1:]
	}
	l.buf = l.buf[:copy(l.buf, rest)]
	return len(p), nil
}

// Flush writes an incomplete last line, if any.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
}

func (l *lineWriter) emit(line []byte) {
	b := make([]byte, 0, len(l.prefix)+len(line)+1)
	b = append(append(b, l.prefix...), line...)
	if line[len(line)-1] != '\n' {
		b = append(b, '\n')
	}
	l.out.Write(b)
}
