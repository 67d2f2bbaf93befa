// Package redistest runs a real redis-server for tests: on a free loopback
// port, without persistence, stopped when the test ends. It never skips: a
// machine without redis-server fails the test (.ci/run installs it).
package redistest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/testport"
)

// Server is one redis-server process.
type Server struct {
	t     testing.TB
	port  int
	argv0 []string // before the defaults: a config file, --sentinel
	tls   bool     // the port speaks TLS only
	// dir is the server's working directory: a replica writes the RDB file
	// of its full sync there, and a server loads one it finds there at
	// start. Each server has its own, or a server would start with the
	// data of an earlier test's replica.
	dir  string
	args []string // after the defaults: cluster or replication settings
	cmd  *exec.Cmd
}

// Start starts redis-server and waits until it answers PING.
func Start(t testing.TB) *Server {
	t.Helper()
	return startWith(t, testport.Get(t))
}

// startWith starts redis-server on port with args after the defaults.
func startWith(t testing.TB, port int, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not on PATH: install it (apt-get install redis-server; .ci/run does)")
	}
	s := &Server{t: t, port: port, dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// StartTLS starts redis-server speaking TLS only (no plain port), with the
// PEM certificate and key given, not asking clients for certificates.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	port := testport.Get(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not on PATH: install it (apt-get install redis-server; .ci/run does)")
	}
	s := &Server{t: t, port: port, dir: t.TempDir(), tls: true}
	s.args = []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no"}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *Server) start() {
	s.t.Helper()
	args := append(append([]string{}, s.argv0...), "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--dir", s.dir)
	args = append(args, s.args...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.ping() {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s never answered PING", s.Addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) ping() bool {
	var c net.Conn
	var err error
	if s.tls {
		// Readiness only: the tests check the certificate themselves.
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 200 * time.Millisecond}, "tcp", s.Addr(), &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprint(c, "PING\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Stop kills the server (idempotent).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Running reports whether the process was started and not stopped.
func (s *Server) Running() bool { return s.cmd != nil }

// Restart starts the server again on the same port, empty (an RDB file
// a replica wrote is removed first).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	os.Remove(filepath.Join(s.dir, "dump.rdb"))
	s.start()
}
