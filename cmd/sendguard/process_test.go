package main

// Tests of sendguard as a process: it is built, started as a child, loaded
// over gRPC like Envoy does, and killed.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sendguard/sendguard/internal/keys"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds sendguard once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sendguard-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sendguard")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// child is one sendguard serve process.
type child struct {
	t          *testing.T
	cmd        *exec.Cmd
	grpc, admn string
	log        string
}

const processConfig = `
listen: {grpc: "%s", admin: "%s"}
admin: {token: t0ken}
store: %s
plans:
  hundred: {daily: 100, monthly: 2000, throttle: {rate: 100000, burst: 100000}, abuse: {pair_per_minute: 1000000}}
accounts:
  - id: demo
    keys: [{id: k, sha256: %s}]
instances:
  - {id: shop, account: demo, plan: hundred}
  - {id: other, account: demo, plan: hundred}
inbound: {signature: {secret: process-inbound-secret}}
`

func writeProcessConfig(t *testing.T, dir, store string) (string, string, string) {
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	p := filepath.Join(dir, "sendguard.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(processConfig, grpcAddr, adminAddr, store, keys.Hash("key"))), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, grpcAddr, adminAddr
}

func startChild(t *testing.T, cfg, grpcAddr, adminAddr string, extra ...string) *child {
	t.Helper()
	log := filepath.Join(t.TempDir(), "sendguard.log")
	out, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, grpc: grpcAddr, admn: adminAddr, log: log}
	c.cmd = exec.Command(binary(t), append([]string{"serve", "--config", cfg}, extra...)...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("sendguard log:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + adminAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			t.Fatalf("sendguard never ready:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// admin calls the admin API and decodes a JSON answer into out (if not nil).
func (c *child) admin(method, path, body string, out any) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, "http://"+c.admn+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %s", method, path, b)
		}
	}
	return resp.StatusCode
}

type usageReply struct {
	Paused bool `json:"paused"`
	Daily  struct {
		Used int64 `json:"used"`
	} `json:"daily"`
}

func dial(t *testing.T, addr string) authv3.AuthorizationClient {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func sendCheck(instance string) *authv3.CheckRequest {
	body := fmt.Sprintf(`{"instance_id":%q,"phone":"+966501234567","message":"Your order #1042 has shipped.","message_purpose":"transactional"}`, instance)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/api/send-message",
			Headers: map[string]string{"authorization": "Bearer key"}, RawBody: []byte(body)},
	}}}
}

// load sends until stop is closed (or the quota is spent) from 16 workers and
// counts the allows sendguard acknowledged.
func load(c authv3.AuthorizationClient, instance string, stop <-chan struct{}) (allowed *atomic.Int64, done func()) {
	allowed = new(atomic.Int64)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				resp, err := c.Check(ctx, sendCheck(instance))
				cancel()
				if err != nil {
					return // the process is gone
				}
				if resp.GetOkResponse() != nil {
					allowed.Add(1)
				}
			}
		})
	}
	return allowed, wg.Wait
}

// TestKillDuringLoad: a sendguard on the embedded store is killed with
// SIGKILL in the middle of a stream of allowed sends, in each sync mode
// (interval, the default: the log is written before the answer and fsync'd
// in the background; always: fsync'd before the answer). After a restart
// the quota counts every allow that was acknowledged, so the instance can
// never be allowed more than its 100 a day, and suppressions and pauses are
// kept.
func TestKillDuringLoad(t *testing.T) {
	for _, sync := range []string{"interval", "always"} {
		t.Run("sync="+sync, func(t *testing.T) { killDuringLoad(t, sync) })
	}
}

func killDuringLoad(t *testing.T, sync string) {
	dir := t.TempDir()
	cfg, grpcAddr, adminAddr := writeProcessConfig(t, dir, fmt.Sprintf("{type: embedded, path: %s, embedded: {sync: %s}}", filepath.Join(dir, "state.db"), sync))
	c := startChild(t, cfg, grpcAddr, adminAddr)
	if code := c.admin("PUT", "/v1/instances/shop/suppressions/+966500000000", `{"reason":"recipient_requested_stop"}`, nil); code/100 != 2 {
		t.Fatalf("put suppression = %d", code)
	}
	if code := c.admin("POST", "/v1/instances/other/pause", "", nil); code/100 != 2 {
		t.Fatalf("pause = %d", code)
	}

	stop := make(chan struct{})
	allowed, wait := load(dial(t, grpcAddr), "shop", stop)
	for allowed.Load() < 30 {
		time.Sleep(time.Millisecond)
	}
	c.kill() // mid-stream: workers have requests in flight
	close(stop)
	wait()
	acked := allowed.Load()
	t.Logf("acknowledged allows before SIGKILL: %d", acked)

	c = startChild(t, cfg, grpcAddr, adminAddr)
	var u usageReply
	c.admin("GET", "/v1/instances/shop/usage", "", &u)
	if u.Daily.Used < acked {
		t.Errorf("after restart daily used = %d, but %d allows were acknowledged before the kill", u.Daily.Used, acked)
	}
	var o usageReply
	c.admin("GET", "/v1/instances/other/usage", "", &o)
	if !o.Paused {
		t.Error("the pause was lost")
	}
	if code := c.admin("GET", "/v1/instances/shop/suppressions/+966500000000", "", nil); code != 200 {
		t.Errorf("the suppression was lost: GET = %d", code)
	}

	// Spend the rest: over both lives, never more than 100.
	never := make(chan struct{})
	more, wait := load(dial(t, grpcAddr), "shop", never)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.admin("GET", "/v1/instances/shop/usage", "", &u)
		if u.Daily.Used >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(never)
	wait()
	if total := acked + more.Load(); total > 100 {
		t.Errorf("%d allows acknowledged before the kill + %d after = %d, over the plan's 100/day", acked, more.Load(), total)
	}
	if u.Daily.Used != 100 {
		t.Errorf("daily used = %d, want 100", u.Daily.Used)
	}
}

// TestPprofOnAdminPort: serve exposes the runtime profiles on the admin
// port only with admin.pprof: true, and then only with the admin token.
func TestPprofOnAdminPort(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", on), func(t *testing.T) {
			dir := t.TempDir()
			cfg, grpcAddr, adminAddr := writeProcessConfig(t, dir, "{type: memory}")
			if on {
				raw, err := os.ReadFile(cfg)
				if err != nil {
					t.Fatal(err)
				}
				raw = []byte(strings.Replace(string(raw), "admin: {token: t0ken}", "admin: {token: t0ken, pprof: true}", 1))
				if err := os.WriteFile(cfg, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := startChild(t, cfg, grpcAddr, adminAddr)
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/mutex?debug=1", "/debug/pprof/block?debug=1"} {
				if code := c.admin("GET", path, "", nil); code != want {
					t.Errorf("GET %s with the token = %d, want %d", path, code, want)
				}
			}
			if on {
				resp, err := http.Get("http://" + adminAddr + "/debug/pprof/cmdline")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("GET /debug/pprof/cmdline without the token = %d, want 401", resp.StatusCode)
				}
			}
		})
	}
}
