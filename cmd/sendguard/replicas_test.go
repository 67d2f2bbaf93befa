package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// TestReplicasShareOneQuota: two sendguard processes on one Redis, 1,000
// concurrent sends split between them on a 100/day plan: exactly 100 are
// allowed, and a suppression put through one replica holds on the other.
func TestReplicasShareOneQuota(t *testing.T) {
	srv := redistest.Start(t)
	// The timeout as high as Envoy's 0.5s allows: the test machine runs
	// other test packages at the same time.
	storeCfg := fmt.Sprintf("{type: redis, redis: {addr: %q, timeout: 450ms}}", srv.Addr())
	var replicas [2]*child
	for i := range replicas {
		cfg, grpcAddr, adminAddr := writeProcessConfig(t, t.TempDir(), storeCfg)
		replicas[i] = startChild(t, cfg, grpcAddr, adminAddr)
	}
	a, b := dial(t, replicas[0].grpc), dial(t, replicas[1].grpc)
	// Warm both replicas (connections, caches) on another instance.
	for _, c := range []authv3.AuthorizationClient{a, b} {
		if resp, err := c.Check(context.Background(), sendCheck("other")); err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("warm-up: %v %v", resp, err)
		}
	}

	allowed, daily, other := sendAcross(t, []authv3.AuthorizationClient{a, b}, 1000)
	if allowed != 100 || daily != 900 || other != 0 {
		t.Errorf("1000 sends over two replicas on 100/day: %d allowed, %d daily, %d other; want exactly 100 allowed", allowed, daily, other)
	}

	// An opt-out recorded through replica 0 is effective on replica 1.
	if code := replicas[0].admin("PUT", "/v1/instances/other/suppressions/+966501234567", `{"reason":"recipient_requested_stop"}`, nil); code/100 != 2 {
		t.Fatalf("put suppression = %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := b.Check(context.Background(), sendCheck("other"))
		if err != nil {
			t.Fatal(err)
		}
		if d := resp.GetDeniedResponse(); d != nil && d.Status.Code == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 1 still allows a recipient suppressed through replica 0: %v", resp)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplicasShareOneFanOut: two sendguard processes on one Redis, 200
// concurrent sends of one body to 200 recipients split between them, on a
// plan whose fan-out limit is 50 distinct recipients in 10 minutes: exactly
// 50 are allowed, the rest answer sending_throttled. (With the counters in
// each process, each replica allowed its own 50.)
func TestReplicasShareOneFanOut(t *testing.T) {
	srv := redistest.Start(t)
	storeCfg := fmt.Sprintf("{type: redis, redis: {addr: %q, timeout: 450ms}}", srv.Addr())
	var replicas [2]*child
	for i := range replicas {
		cfg, grpcAddr, adminAddr := writeProcessConfig(t, t.TempDir(), storeCfg)
		replicas[i] = startChild(t, cfg, grpcAddr, adminAddr)
	}
	a, b := dial(t, replicas[0].grpc), dial(t, replicas[1].grpc)
	for _, c := range []authv3.AuthorizationClient{a, b} {
		if resp, err := c.Check(context.Background(), sendCheck("other")); err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("warm-up: %v %v", resp, err)
		}
	}
	throttled := string(catalog.Body(catalog.SendingThrottled, catalog.Details{}))
	var allowed, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// One template, a name and a number apart: one body.
			names := []string{"Sara", "Omar", "Ayşe", "İlker"}
			msg := fmt.Sprintf("Hi %s, your report %d is ready", names[i%len(names)], 1000+i)
			resp, err := c.Check(ctx, sendCheckTo("shop", fmt.Sprintf("+96650100%04d", i), msg))
			switch {
			case err != nil:
				t.Error(err)
			case resp.GetOkResponse() != nil:
				allowed.Add(1)
			case resp.GetDeniedResponse().GetStatus().GetCode() == 429 && resp.GetDeniedResponse().GetBody() == throttled:
				limited.Add(1)
			default:
				t.Errorf("recipient %d: unexpected %v", i, resp.GetDeniedResponse())
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 50 || limited.Load() != 150 {
		t.Errorf("200 recipients of one body over two replicas on a fan-out limit of 50: %d allowed, %d throttled; want exactly 50 allowed", allowed.Load(), limited.Load())
	}
}

// sendCheckTo is a send of message to phone through instance.
func sendCheckTo(instance, phone, message string) *authv3.CheckRequest {
	body, _ := json.Marshal(map[string]string{"instance_id": instance, "phone": phone, "message": message, "message_purpose": "transactional"})
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/api/send-message",
			Headers: map[string]string{"authorization": "Bearer key"}, RawBody: body},
	}}}
}

// TestRedisDownFailsClosed: with Redis stopped mid-run, a decision answers
// the documented 503 policy_check_unavailable (not a gRPC error, and within
// the store timeout, well inside Envoy's 0.5s); when Redis returns,
// decisions are normal again without a restart.
func TestRedisDownFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	cfg, grpcAddr, adminAddr := writeProcessConfig(t, t.TempDir(), fmt.Sprintf("{type: redis, redis: {addr: %q, timeout: 100ms}}", srv.Addr()))
	c := startChild(t, cfg, grpcAddr, adminAddr)
	cl := dial(t, c.grpc)
	if resp, err := cl.Check(context.Background(), sendCheck("shop")); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("with Redis up: %v %v", resp, err)
	}

	srv.Stop()
	want := string(catalog.Body(catalog.PolicyCheckUnavailable, catalog.Details{}))
	for range 3 {
		// Envoy would give up after 0.5s; a gRPC deadline of 0.5s here fails
		// the test if sendguard does not answer within it.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		resp, err := cl.Check(ctx, sendCheck("shop"))
		cancel()
		if status.Code(err) == codes.DeadlineExceeded {
			t.Fatal("sendguard did not answer within Envoy's ext_authz timeout while Redis was down")
		}
		if err != nil {
			t.Fatal(err)
		}
		d := resp.GetDeniedResponse()
		if d == nil || d.Status.Code != 503 || d.Body != want {
			t.Fatalf("with Redis down: %v, want 503 %s", resp, want)
		}
	}

	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := cl.Check(context.Background(), sendCheck("shop"))
		if err == nil && resp.GetOkResponse() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decisions never recovered after Redis returned: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCheckWritesNoAbuseCounters: `check --state store` against Redis
// reads the store and writes nothing to it, not even the abuse counters it
// checks (it keeps its own, in the process).
func TestCheckWritesNoAbuseCounters(t *testing.T) {
	srv := redistest.Start(t)
	cfg, _, _ := writeProcessConfig(t, t.TempDir(), fmt.Sprintf("{type: redis, redis: {addr: %q, timeout: 450ms}}", srv.Addr()))
	body := `{"instance_id":"shop","phone":"+966501234567","message":"Hi Sara, your order 1042 has shipped.","message_purpose":"transactional"}`
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check", "--config", cfg, "--state", "store", "--key", "key"}, noenv, strings.NewReader(body), &out, &errOut); err != nil {
		t.Fatalf("check: %v\n%s", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "allowed:") {
		t.Fatalf("check = %s", out.String())
	}
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	keys, err := raw.Keys(context.Background(), "*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("check --state store wrote %v (%v), want nothing", keys, err)
	}
}

// sendAcross sends n concurrent sends to instance shop, spread over
// clients in turn, and counts the answers: allowed, refused by the daily
// limit (429), and anything else (logged). A send answered 503
// policy_check_unavailable (the store past its timeout on a loaded
// machine) is sent again after 100 ms, as a client honouring retry-after
// would: what the failed decision took was given back, so the counts stay
// exact.
func sendAcross(t *testing.T, clients []authv3.AuthorizationClient, n int) (allowed, daily, other int64) {
	t.Helper()
	unavailable := string(catalog.Body(catalog.PolicyCheckUnavailable, catalog.Details{}))
	var a, d, o atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		c := clients[i%len(clients)]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := c.Check(ctx, sendCheck("shop"))
			for err == nil && resp.GetDeniedResponse().GetBody() == unavailable && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
				resp, err = c.Check(ctx, sendCheck("shop"))
			}
			switch {
			case err != nil:
				t.Error(err)
			case resp.GetOkResponse() != nil:
				a.Add(1)
			case resp.GetDeniedResponse().GetStatus().GetCode() == 429:
				d.Add(1)
			default:
				o.Add(1)
				t.Logf("unexpected: %v", resp.GetDeniedResponse())
			}
		})
	}
	wg.Wait()
	return a.Load(), d.Load(), o.Load()
}
