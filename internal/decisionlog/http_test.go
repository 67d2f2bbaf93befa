package decisionlog

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/decision"
)

// collector is a stand-in for an OPA decision-log collector: it takes
// POSTs of gzipped JSON arrays, as OPA uploads them, or fails while down.
type collector struct {
	mu      sync.Mutex
	down    bool
	batches [][]map[string]any
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != "POST" || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var events []map[string]any
	if err := json.NewDecoder(zr).Decode(&events); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.batches = append(c.batches, events)
}

func (c *collector) events() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []map[string]any
	for _, b := range c.batches {
		all = append(all, b...)
	}
	return all
}

// TestHTTPSink: events arrive in OPA's upload format (gzipped JSON arrays
// of at most Batch events, each with labels, decision_id, the policy
// revision as a bundle revision, path, input, result, timestamp and
// metrics); while the collector is down the batches wait, up to
// MaxPending events, the oldest dropped and counted beyond that; Close
// delivers what waits.
func TestHTTPSink(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	var dropped float64
	sink := NewHTTPSink(HTTPOptions{URL: srv.URL + "/logs", Batch: 10, Interval: time.Hour, MaxPending: 30,
		Labels: map[string]string{"app": "sendguard"}, Dropped: adder{&dropped}, Now: func() time.Time { return now }})
	l, err := New(Options{Sink: sink, Buffer: 1000, PhoneKey: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) Record {
		return Record{Time: now, Policy: "rev1", Method: "POST", Result: decision.Result{ID: fmt.Sprintf("dec-%03d", i), Send: true,
			Code: catalog.PolicyViolation, Status: 403, Phone: "+966501234567", Instance: "shop", Scored: true, RiskScore: 90}}
	}
	for i := range 25 {
		l.Log(rec(i))
	}
	waitFor(t, func() bool { return len(col.events()) == 20 })
	col.mu.Lock()
	col.down = true
	col.mu.Unlock()
	for i := 25; i < 75; i++ { // 5 more fill the open batch, then 4 batches of 10 wait on a down collector
		l.Log(rec(i))
	}
	waitFor(t, func() bool { return l.Written() == 75 })
	col.mu.Lock()
	col.down = false
	col.mu.Unlock()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := col.events()
	if dropped == 0 || len(evs)+int(dropped) != 75 {
		t.Errorf("delivered %d, dropped %v; want some dropped and 75 in all", len(evs), dropped)
	}
	for _, b := range col.batches {
		if len(b) > 10 {
			t.Errorf("a batch of %d events, want at most 10", len(b))
		}
	}
	var e map[string]any
	for _, ev := range evs {
		if ev["decision_id"] == "dec-000" {
			e = ev
		}
	}
	if e["decision_id"] != "dec-000" || e["path"] != "sendguard/decision/result" || e["timestamp"] != "2026-05-08T10:00:00Z" {
		t.Errorf("event %v", e)
	}
	if lb, _ := e["labels"].(map[string]any); lb["app"] != "sendguard" {
		t.Errorf("labels %v", e["labels"])
	}
	if b, _ := e["bundles"].(map[string]any); fmt.Sprint(b["sendguard"]) != "map[revision:rev1]" {
		t.Errorf("bundles %v", e["bundles"])
	}
	if r, _ := e["result"].(map[string]any); r["code"] != "policy_violation" || r["result"] != "denied" {
		t.Errorf("result %v", e["result"])
	}
	if in, _ := e["input"].(map[string]any); in["instance_id"] != "shop" || in["phone"] != nil || len(fmt.Sprint(in["phone_hmac"])) != 64 {
		t.Errorf("input %v", e["input"])
	}
	if m, _ := e["metrics"].(map[string]any); m["timer_sendguard_decision_ns"] == nil {
		t.Errorf("metrics %v", e["metrics"])
	}
}

type adder struct{ n *float64 }

func (a adder) Add(v float64) { *a.n += v }

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
