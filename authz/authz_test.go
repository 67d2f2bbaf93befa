package authz

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/catalog/seedfile"
	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var testNow = time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)

// client starts the real Authorization server on bufconn, deciding with the
// embedded policies and a memory store at a fixed clock.
func client(t testing.TB) (authv3.AuthorizationClient, *store.Memory, *time.Time) {
	t.Helper()
	return clientWith(t, limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 5})
}

// clientWith is client with the starter limits, and edit applied to the
// decider's options.
func clientWith(t testing.TB, starter limiter.Limits, edit ...func(*decision.Options)) (authv3.AuthorizationClient, *store.Memory, *time.Time) {
	t.Helper()
	d, st, now := newDecider(t, starter, edit...)
	gs := grpc.NewServer(ServerCodec())
	NewServer(d, nil).Register(gs)
	return authv3.NewAuthorizationClient(serveBufconn(t, gs)), st, now
}

// serveBufconn serves gs on an in-memory listener until the test ends and
// returns a client connection to it.
func serveBufconn(t testing.TB, gs *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// newDecider is clientWith's decider, its memory store and its clock.
func newDecider(t testing.TB, starter limiter.Limits, edit ...func(*decision.Options)) (*decision.Decider, *store.Memory, *time.Time) {
	t.Helper()
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	phones, err := phone.New(phone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(phones.Close)
	st := store.NewMemory(limiter.Calendar{})
	now := testNow
	var n atomic.Int64
	opts := decision.Options{
		Keys: keys.NewKeyring([]keys.Entry{
			{SHA256: keys.Hash("key-demo"), Key: keys.Key{ID: "k1", Account: "demo"}},
			{SHA256: keys.Hash("key-revoked"), Key: keys.Key{ID: "k2", Account: "demo", Revoked: true}},
		}),
		Instances: map[string]decision.Instance{
			"inst_12345": {ID: "inst_12345", Account: "demo", Plan: "starter", Limits: starter},
			"paused":     {ID: "paused", Account: "demo", Plan: "starter", Limits: starter},
		},
		Policy: engine, State: st, Phones: phones,
		Now:   func() time.Time { return now },
		NewID: func() string { return fmt.Sprintf("dec-%d", n.Add(1)) },
	}
	for _, e := range edit {
		e(&opts)
	}
	d, err := decision.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetPaused(ctx, "paused", true)
	_ = st.PutSuppression(ctx, store.Suppression{Instance: "inst_12345", Phone: "+966500000000"})
	return d, st, &now
}

func checkRequest(method, path, auth, body string) *authv3.CheckRequest {
	h := map[string]string{"content-type": "application/json", "x-sendguard-purpose": "spoofed"}
	if auth != "" {
		h["authorization"] = auth
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Headers: h, RawBody: []byte(body)},
	}}}
}

func sendBody(instance, phone, msg, purpose string) string {
	m := map[string]string{"instance_id": instance, "phone": phone, "message": msg}
	if purpose != "" {
		m["message_purpose"] = purpose
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func headerMap(hs []*corev3.HeaderValueOption) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		if h.AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			m["!append "+h.Header.Key] = h.Header.Value
		}
		m[h.Header.Key] = h.Header.Value
	}
	return m
}

// dump renders headers sorted, one per line.
func dump(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, k+": "+v)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s mismatch:\ngot  %s\nwant %s", name, got, want)
	}
}

const (
	recipient = "+966501234567"
	okMessage = "Your order #2041 has been shipped."
	spam      = "YOU HAVE WON A PRIZE!!!!!"
)

// TestGoldenDenials drives each of the 13 errors sendguard produces through
// the gRPC wire and compares the body byte for byte with testdata/CODE.json
// (the seed's examples, compacted, where the seed has one).
func TestGoldenDenials(t *testing.T) {
	tests := []struct {
		code   catalog.Code
		auth   string
		body   string
		before func(st *store.Memory, now *time.Time) // state to set up
		extra  map[string]string                      // headers beyond content-type and decision id
	}{
		{code: catalog.InvalidAPIKey, body: sendBody("inst_12345", recipient, okMessage, "transactional")},
		{code: catalog.RevokedAPIKey, auth: "Bearer key-revoked", body: sendBody("inst_12345", recipient, okMessage, "transactional")},
		{code: catalog.InvalidJSON, auth: "Bearer key-demo", body: `{"instance_id":`},
		{code: catalog.ValidationError, auth: "Bearer key-demo", body: `{"instance_id":"inst_12345","message":"hi"}`},
		{code: catalog.InvalidInstance, auth: "Bearer key-demo", body: sendBody("inst_999", recipient, okMessage, "transactional")},
		{code: catalog.InstancePaused, auth: "Bearer key-demo", body: sendBody("paused", recipient, okMessage, "transactional")},
		{code: catalog.MessagePurposeRequired, auth: "Bearer key-demo", body: sendBody("inst_12345", recipient, okMessage, "")},
		{code: catalog.MessagePurposeNotAllowed, auth: "Bearer key-demo", body: sendBody("inst_12345", recipient, okMessage, "marketing")},
		{code: catalog.RecipientSuppressed, auth: "Bearer key-demo", body: sendBody("inst_12345", "+966500000000", okMessage, "support")},
		{code: catalog.PolicyViolation, auth: "Bearer key-demo", body: sendBody("inst_12345", recipient, spam, "transactional")},
		{code: catalog.MonthlyLimitExceeded, auth: "Bearer key-demo", body: sendBody("inst_12345", recipient, okMessage, "transactional"),
			before: func(st *store.Memory, now *time.Time) {
				l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1e9, Burst: 1e9}
				for day := 1; day <= 20; day++ {
					for range 100 {
						st.Take(context.Background(), "inst_12345", l, time.Date(2026, 5, day, 9, 0, 0, 0, time.UTC))
					}
				}
				*now = time.Date(2026, 5, 31, 23, 0, 0, 0, time.UTC)
			},
			extra: map[string]string{"retry-after": "3600", "ratelimit-policy": `"monthly";q=2000;w=2678400`, "ratelimit": `"monthly";r=0;t=3600`}},
		{code: catalog.DailyLimitExceeded, auth: "Bearer key-demo", body: sendBody("inst_12345", recipient, okMessage, "transactional"),
			before: func(st *store.Memory, now *time.Time) {
				l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1e9, Burst: 1e9}
				for range 100 {
					st.Take(context.Background(), "inst_12345", l, testNow)
				}
			},
			extra: map[string]string{"retry-after": "50400", "ratelimit-policy": `"daily";q=100;w=86400`, "ratelimit": `"daily";r=0;t=50400`}},
		{code: catalog.SendingThrottled, auth: "Bearer key-demo", body: sendBody("inst_12345", recipient, okMessage, "transactional"),
			before: func(st *store.Memory, now *time.Time) {
				for range 5 { // the bucket holds 5
					st.Take(context.Background(), "inst_12345", limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 5}, testNow)
				}
			},
			extra: map[string]string{"retry-after": "1"}},
	}
	if len(tests) != 13 {
		t.Fatalf("%d cases, want the 13 errors sendguard produces", len(tests))
	}
	for _, tc := range tests {
		t.Run(string(tc.code), func(t *testing.T) {
			c, st, now := client(t)
			if tc.before != nil {
				tc.before(st, now)
			}
			resp, err := c.Check(context.Background(), checkRequest("POST", "/api/send-message?x=1", tc.auth, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied == nil {
				t.Fatalf("Check = %v, want a denial", resp)
			}
			e, _ := catalog.Lookup(tc.code)
			if int(denied.Status.Code) != e.Status || resp.Status.Code != 7 {
				t.Errorf("status = %d (grpc %d), want %d (grpc 7)", denied.Status.Code, resp.Status.Code, e.Status)
			}
			want := map[string]string{"content-type": "application/json", HeaderDecisionID: "dec-1"}
			for k, v := range tc.extra {
				want[k] = v
			}
			if got := headerMap(denied.Headers); dump(got) != dump(want) {
				t.Errorf("headers =\n%swant\n%s", dump(got), dump(want))
			}
			golden(t, string(tc.code)+".json", []byte(denied.Body))
		})
	}
}

// TestGoldenAllow checks the allow path: upstream headers overwrite any
// client value, and the client response carries the decision id.
func TestGoldenAllow(t *testing.T) {
	c, _, _ := client(t)
	resp, err := c.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, " Transactional ")))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil || resp.Status.Code != 0 {
		t.Fatalf("Check = %v, want OK", resp)
	}
	got := "upstream:\n" + dump(headerMap(ok.Headers)) + "client:\n" + dump(headerMap(ok.ResponseHeadersToAdd))
	golden(t, "allow.golden", []byte(got))
}

// TestGoldenAllowRateLimit: with the decider's RateLimitHeaders the client
// (and only the client) also gets RateLimit-Policy and RateLimit, set with
// overwrite semantics, beside the decision id; the sender's headers are
// those of allow.golden. Without it, TestGoldenAllow's golden holds.
func TestGoldenAllowRateLimit(t *testing.T) {
	c, _, _ := clientWith(t, limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 5}, func(o *decision.Options) { o.RateLimitHeaders = true })
	var ok *authv3.OkHttpResponse
	for i := range 3 {
		resp, err := c.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, " Transactional ")))
		if err != nil {
			t.Fatal(err)
		}
		if ok = resp.GetOkResponse(); ok == nil || resp.Status.Code != 0 {
			t.Fatalf("Check %d = %v, want OK", i, resp)
		}
	}
	got := "upstream:\n" + dump(headerMap(ok.Headers)) + "client:\n" + dump(headerMap(ok.ResponseHeadersToAdd))
	golden(t, "allow_ratelimit.golden", []byte(got))
}

func TestOtherRoutesPass(t *testing.T) {
	c, _, _ := client(t)
	resp, err := c.Check(context.Background(), checkRequest("GET", "/api/status", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if ok := resp.GetOkResponse(); ok == nil || len(ok.Headers) != 0 {
		t.Errorf("Check(GET /api/status) = %v, want OK without upstream headers", resp)
	}
}

type failing struct{}

func (failing) Decide(context.Context, decision.Request) (decision.Result, error) {
	return decision.Result{ID: "dec-x"}, fmt.Errorf("store down")
}

func TestFailureFailsClosed(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := NewServer(failing{}, nil).WithMetrics(reg)
	resp, err := srv.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer k", "{}"))
	if err != nil {
		t.Fatal(err)
	}
	d := resp.GetDeniedResponse()
	if d == nil || d.Status.Code != 503 || d.Body != string(catalog.Body(catalog.PolicyCheckUnavailable, catalog.Details{})) {
		t.Errorf("Check with a failing decider = %v, want the policy_check_unavailable denial", resp)
	}
	if n := testutil.ToFloat64(srv.m.failures); n != 1 {
		t.Errorf("sendguard_decision_failures_total = %v, want 1", n)
	}
	if n := testutil.ToFloat64(srv.m.results.WithLabelValues("policy_check_unavailable")); n != 1 {
		t.Errorf("decisions_total{policy_check_unavailable} = %v, want 1", n)
	}
}

// TestGoldensMatchSeed keeps the golden files honest: where the seed has an
// example body, the golden is that example compacted, byte for byte; where
// it has none, the golden has the seed's shape with the table's message.
func TestGoldensMatchSeed(t *testing.T) {
	table, examples, err := seedfile.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 8 {
		t.Fatalf("parsed %d seed examples, want at least 8", len(examples))
	}
	for code, row := range table {
		if code == string(catalog.GatewaySendFailed) {
			continue // Envoy's, checked end to end
		}
		got, err := os.ReadFile(filepath.Join("testdata", code+".json"))
		if err != nil {
			t.Errorf("no golden for %s: %v", code, err)
			continue
		}
		if ex, ok := examples[code]; ok {
			if string(got) != string(ex) {
				t.Errorf("%s golden differs from the seed's example:\ngot  %s\nseed %s", code, got, ex)
			}
			continue
		}
		var body struct {
			Success *bool           `json:"success"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		}
		if err := json.Unmarshal(got, &body); err != nil || body.Success == nil || *body.Success || body.Error != code || body.Message != row.Message || len(body.Details) == 0 {
			t.Errorf("%s golden %s does not have the seed's shape and message %q", code, got, row.Message)
		}
		prefix := `{"success":false,"error":"` + code + `","message":` + strconv.Quote(row.Message) + `,"details":{"action":`
		if !strings.HasPrefix(string(got), prefix) {
			t.Errorf("%s golden %s: want the seed's key order, starting %s", code, got, prefix)
		}
	}
}

// BenchmarkCheckAllow is one allowed send through the gRPC server over an
// in-memory connection: protobuf both ways plus the decision.
func BenchmarkCheckAllow(b *testing.B) {
	c, _, _ := clientWith(b, limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40})
	benchAllowed(b, c)
}

// allowedRequest is the allowed send the Check benchmarks time.
func allowedRequest() *authv3.CheckRequest {
	return checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
}

// benchAllowed calls c.Check with one allowed send in a loop.
func benchAllowed(b *testing.B, c authv3.AuthorizationClient) {
	req := allowedRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatal(resp, err)
		}
	}
}

// TestGoldenOwnDenials drives sendguard's own 400s through the gRPC wire:
// a path that cannot be read one way only, a read of the send path with a
// body, and a send with a contract field in its query string. Their bodies are in the contract's shape (testdata/CODE.json).
func TestGoldenOwnDenials(t *testing.T) {
	body := sendBody("inst_12345", recipient, okMessage, "transactional")
	tests := []struct {
		code         catalog.Code
		method, path string
	}{
		{catalog.InvalidRequestPath, "POST", "/api/send-message%20?x=1"},
		{catalog.InvalidRequestMethod, "GET", "/api/send-message?x=1"},
		{catalog.InvalidRequestQuery, "POST", "/api/send-message?x=1&phone=%2B966500000000"},
	}
	for _, tc := range tests {
		t.Run(string(tc.code), func(t *testing.T) {
			c, _, _ := client(t)
			resp, err := c.Check(context.Background(), checkRequest(tc.method, tc.path, "Bearer key-demo", body))
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied == nil || denied.Status.Code != 400 {
				t.Fatalf("Check(%s %s) = %v, want a 400 denial", tc.method, tc.path, resp)
			}
			if want := catalog.Body(tc.code, catalog.Details{}); denied.Body != string(want) {
				t.Errorf("Check(%s %s) body = %s, want %s", tc.method, tc.path, denied.Body, want)
			}
			golden(t, string(tc.code)+".json", []byte(denied.Body))
		})
	}
}
