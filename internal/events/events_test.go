package events

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/catalog/seedfile"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// seedEvent is the source contract's opt-out event, compacted.
func seedEvent(t *testing.T) []byte {
	raw, err := os.ReadFile(seedfile.Path())
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(`"event": "recipient.opted_out"`))
	start := bytes.LastIndexByte(raw[:i], '{')
	end := i + bytes.IndexByte(raw[i:], '}') + 1
	var c bytes.Buffer
	if err := json.Compact(&c, raw[start:end]); err != nil {
		t.Fatal(err)
	}
	return c.Bytes()
}

func TestBodyIsTheSeedsEvent(t *testing.T) {
	e := Recipient{Event: OptedOut, InstanceID: "demo-support-line", InstanceName: "Demo Support Line", From: "+9665XXXXXXX",
		Reason: ReasonStop, MessageText: "STOP", Timestamp: "2026-05-08T10:00:00Z"}
	if got, want := e.Body(), seedEvent(t); !bytes.Equal(got, want) {
		t.Errorf("body\n%s\nwant the seed's\n%s", got, want)
	}
	// Text is not HTML-escaped and survives any characters.
	e.MessageText = `<stop> & "إيقاف"`
	var back Recipient
	if err := json.Unmarshal(e.Body(), &back); err != nil || back != e || bytes.Contains(e.Body(), []byte(`\u003c`)) {
		t.Errorf("body %s", e.Body())
	}
}

func TestSignAndVerify(t *testing.T) {
	secret, body, now := []byte("s3cret"), []byte(`{"a":1}`), time.Unix(1778234400, 0)
	sig := Sign(secret, now, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Fatalf("signature %q", sig)
	}
	ts := "1778234400"
	if !Verify(secret, ts, sig, body, now.Add(time.Minute), 5*time.Minute) {
		t.Error("a valid signature failed")
	}
	for name, ok := range map[string]bool{
		"other secret": Verify([]byte("x"), ts, sig, body, now, time.Minute),
		"other body":   Verify(secret, ts, sig, []byte(`{"a":2}`), now, time.Minute),
		"other time":   Verify(secret, "1778234401", sig, body, now, time.Minute),
		"too old":      Verify(secret, ts, sig, body, now.Add(time.Hour), time.Minute),
		"garbage":      Verify(secret, "x", sig, body, now, time.Minute),
	} {
		if ok {
			t.Errorf("%s verified", name)
		}
	}
}

type delivery struct {
	header http.Header
	body   []byte
}

// receiver answers 503 to the first fail requests, then 200, and records
// what it accepted.
type receiver struct {
	fail  atomic.Int64
	mu    sync.Mutex
	got   []delivery
	tries atomic.Int64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.tries.Add(1)
	b, _ := io.ReadAll(req.Body)
	if r.fail.Add(-1) >= 0 {
		w.WriteHeader(503)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{req.Header.Clone(), b})
	r.mu.Unlock()
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDispatcherRetriesThenDelivers(t *testing.T) {
	down, up := &receiver{}, &receiver{}
	down.fail.Store(2)
	sDown, sUp := httptest.NewServer(down), httptest.NewServer(up)
	defer sDown.Close()
	defer sUp.Close()
	st := store.NewMemory(limiter.Calendar{})
	recv := []Receiver{{Name: "flaky", URL: sDown.URL, Secret: []byte("k1")}, {Name: "steady", URL: sUp.URL, Secret: []byte("k2")}}
	body := Recipient{Event: OptedOut, InstanceID: "i", InstanceName: "I", From: "+966501234567", Reason: ReasonStop, MessageText: "STOP", Timestamp: "2026-05-08T10:00:00Z"}.Body()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Enqueue(ctx, st, recv, "ev1", OptedOut, body, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := Enqueue(ctx, st, recv, "ev1", OptedOut, body, time.Now()); err != nil { // a retried inbound: no duplicate
		t.Fatal(err)
	}
	d := &Dispatcher{Outbox: st, Receivers: recv, BaseDelay: 10 * time.Millisecond, Poll: 10 * time.Millisecond}
	go d.Run(ctx)
	waitFor(t, "both receivers served", func() bool { return len(down.deliveries()) == 1 && len(up.deliveries()) == 1 })
	if n := down.tries.Load(); n != 3 {
		t.Errorf("flaky receiver tried %d times, want 3 (2 failures, then success)", n)
	}
	for name, r := range map[string]*receiver{"k1": down, "k2": up} {
		got := r.deliveries()[0]
		h := got.header
		if !bytes.Equal(got.body, body) || h.Get(HeaderEventID) != "ev1" || h.Get(HeaderEvent) != OptedOut || h.Get("Content-Type") != "application/json" {
			t.Errorf("delivery %v %s", h, got.body)
		}
		if !Verify([]byte(name), h.Get(HeaderTimestamp), h.Get(HeaderSignature), got.body, time.Now(), time.Minute) {
			t.Errorf("signature with %s does not verify", name)
		}
	}
	waitFor(t, "outbox empty", func() bool { n, _ := st.Pending(ctx); return n == 0 })
	time.Sleep(50 * time.Millisecond)
	if len(up.deliveries()) != 1 {
		t.Error("an acknowledged event was delivered again")
	}
}

func TestDispatcherGivesUp(t *testing.T) {
	dead := &receiver{}
	dead.fail.Store(1 << 30)
	srv := httptest.NewServer(dead)
	defer srv.Close()
	st := store.NewMemory(limiter.Calendar{})
	recv := []Receiver{{Name: "dead", URL: srv.URL, Secret: []byte("k")}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	Enqueue(ctx, st, recv, "old", OptedOut, []byte(`{}`), time.Now().Add(-73*time.Hour))
	var dropped atomic.Int64
	d := &Dispatcher{Outbox: st, Receivers: recv, Poll: 10 * time.Millisecond, Dropped: func(string) { dropped.Add(1) }}
	go d.Run(ctx)
	waitFor(t, "dropped after the retry window", func() bool { return dropped.Load() == 1 })
	if n, _ := st.Pending(ctx); n != 0 {
		t.Errorf("pending = %d", n)
	}
}

func TestBackoffIsJitteredAndCapped(t *testing.T) {
	d := &Dispatcher{}
	d.init()
	for attempts := 1; attempts < 60; attempts++ {
		b := d.backoff(attempts)
		ceil := min(time.Hour, time.Second<<min(attempts-1, 30))
		if b < 100*time.Millisecond || b > ceil {
			t.Fatalf("backoff(%d) = %v, outside [100ms, %v]", attempts, b, ceil)
		}
	}
}
