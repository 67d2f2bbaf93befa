package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/store"
)

// panickingState is the memory store, except that Usage of "boom" panics.
type panickingState struct{ *store.Memory }

func (s panickingState) Usage(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error) {
	if instance == "boom" {
		var m map[string]int
		m[instance]++
	}
	return s.Memory.Usage(ctx, instance, l, now)
}

type counter struct{ n atomic.Int64 }

func (c *counter) Inc() { c.n.Add(1) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestHandlerPanicIsContained: a panic in a handler answers 500 with the
// JSON error shape, is logged at error level with its stack and counted,
// and the next call is served.
func TestHandlerPanicIsContained(t *testing.T) {
	phones, err := phone.New(phone.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	var panics counter
	l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 10}
	srv := httptest.NewServer(Handler(Options{
		Token: "secret",
		Instances: map[string]Instance{
			"shop": {ID: "shop", Plan: "starter", Limits: l},
			"boom": {ID: "boom", Plan: "starter", Limits: l},
		},
		State:  panickingState{store.NewMemory(limiter.Calendar{})},
		Phones: phones,
		Log:    slog.New(slog.NewJSONHandler(logs, nil)),
		Panics: &panics,
	}))
	t.Cleanup(srv.Close)

	code, body := call(t, srv, "GET", "/v1/instances/boom/usage", "secret", "")
	if want := `{"error":"internal_error","message":"The request failed; see the logs."}` + "\n"; code != 500 || body != want {
		t.Errorf("GET usage with a panicking store = %d %s, want 500 %s", code, body, want)
	}
	if n := panics.n.Load(); n != 1 {
		t.Errorf("panics counted = %d, want 1", n)
	}
	var rec map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "admin handler panicked" {
			rec = m
		}
	}
	if rec == nil || rec["level"] != "ERROR" || rec["path"] != "/v1/instances/boom/usage" || !strings.Contains(rec["stack"].(string), "panickingState.Usage") {
		t.Errorf("panic log = %v, want an ERROR record with the path and a stack through panickingState.Usage", rec)
	}
	if code, body := call(t, srv, "GET", "/v1/instances/shop/usage", "secret", ""); code != 200 {
		t.Errorf("GET usage after the panic = %d %s, want 200", code, body)
	}
}
