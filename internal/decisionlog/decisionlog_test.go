package decisionlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/store"
)

const apiKey = "sk-live-9d7f2c41a8e6b3d05f11"

var multilingual = []string{
	"Your order #2041 has been shipped.",
	"طلبك رقم 1042 تم شحنه 📦",
	"आपका ऑर्डर 5531 भेज दिया गया है",
	"Siparişiniz 8812 kargoya verildi, teşekkürler!",
	"Café naïve — ё̈ combining marks a\u0301",
	"YOU HAVE WON A PRIZE!!!!! Claim it at bit.ly/win 🎉🎉",
	"Big sale this weekend only, limited time",
	"line\nbreak \"quoted\" back\\slash \u2028 sep \x01 ctl",
	"آپ کا آرڈر 7712 روانہ کر دیا گیا ہے",
}

var recipients = []string{"+966501234567", "+٩٦٦٥٠١٢٣٤٥٦٨", "00966 50 123 4569", "+966500000000", "+91 98765 43210", "+90 532 123 45 67"}

// rawDigits are the national significant digits of the recipients: none
// may appear in a log line.
var rawDigits = []string{"501234567", "501234568", "501234569", "500000000", "9876543210", "5321234567"}

// newDecider is a real decider: the embedded policies, a phone
// normaliser, a risk scanner and a memory store; instance "shop" with
// limits that cannot be reached, and "paused".
func newDecider(t testing.TB) *decision.Decider {
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
	unlimited := limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}
	d, err := decision.New(decision.Options{
		Scanner: risk.New(risk.Options{}),
		Keys:    keys.NewKeyring([]keys.Entry{{SHA256: keys.Hash(apiKey), Key: keys.Key{ID: "key-1", Account: "demo"}}}),
		Instances: map[string]decision.Instance{
			"shop":   {ID: "shop", Account: "demo", Plan: "starter", Limits: unlimited},
			"paused": {ID: "paused", Account: "demo", Plan: "starter", Limits: unlimited},
		},
		Policy: engine, State: st, Phones: phones,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetPaused(ctx, "paused", true)
	_ = st.PutSuppression(ctx, store.Suppression{Instance: "shop", Phone: "+966500000000", Reason: "recipient_requested_stop"})
	return d
}

func sendRequest(i int) decision.Request {
	m := map[string]string{
		"instance_id": []string{"shop", "shop", "shop", "paused", "nope"}[i%5],
		"phone":       recipients[i%len(recipients)],
		"message":     multilingual[i%len(multilingual)],
	}
	if p := []string{"transactional", "marketing", "", "support"}[i%4]; p != "" {
		m["message_purpose"] = p
	}
	b, _ := json.Marshal(m)
	auth := "Bearer " + apiKey
	if i%11 == 0 {
		auth = "Bearer " + apiKey + "x" // unknown: a key that is nearly right must not be logged either
	}
	return decision.Request{Method: "POST", Path: "/api/send-message", Authorization: auth, Body: b}
}

type line struct {
	Time         time.Time `json:"time"`
	DecisionID   string    `json:"decision_id"`
	Result       string    `json:"result"`
	Code         string    `json:"code"`
	Instance     string    `json:"instance_id"`
	KeyID        string    `json:"key_id"`
	PhoneHMAC    string    `json:"phone_hmac"`
	Phone        *string   `json:"phone"`
	Message      *string   `json:"message"`
	RiskScore    *int      `json:"risk_score"`
	PolicyResult string    `json:"policy_result"`
	Input        *struct {
		Instance struct{ ID, Plan string }
		Signals  map[string]int `json:"signals"`
	} `json:"input"`
	PolicyRevision string `json:"policy_revision"`
	ConfigRevision string `json:"config_revision"`
	StoreNS        *int64 `json:"store_ns"`
	TotalNS        *int64 `json:"total_ns"`
}

func readLines(t *testing.T, data []byte) []line {
	t.Helper()
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("not JSON: %s", sc.Bytes())
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %s: %v", sc.Bytes(), err)
		}
		out = append(out, l)
	}
	return out
}

// TestOneLinePerDecisionUnderLoad: many goroutines deciding multilingual
// sends through the logging decider give exactly one valid JSON line per
// decision, under the decision id the caller got, with no API key, no raw
// phone number and no message text in the file.
func TestOneLinePerDecisionUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.log")
	sink, err := NewFileSink(path, 1<<30, 2)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perG = 32, 60
	var dropped atomic.Int64
	l, err := New(Options{Sink: sink, Buffer: goroutines * perG, PhoneKey: []byte("test-hmac-key"),
		PolicyRevision: func() string { return "pol123" }, ConfigRevision: "cfg456", Dropped: counter{&dropped}})
	if err != nil {
		t.Fatal(err)
	}
	d := Wrap(newDecider(t), l)
	ids := make(chan string, goroutines*perG)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				res, err := d.Decide(context.Background(), sendRequest(g*perG+i))
				if err != nil {
					t.Errorf("Decide: %v", err)
				}
				ids <- res.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range append([]string{apiKey, keys.Hash(apiKey)}, rawDigits...) {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the log holds %q", secret)
		}
	}
	for _, m := range multilingual {
		if bytes.Contains(data, []byte(m)) {
			t.Errorf("the log holds the message %q", m)
		}
	}
	lines := readLines(t, data)
	if len(lines) != goroutines*perG || dropped.Load() != 0 {
		t.Fatalf("%d lines, %d dropped; want %d lines", len(lines), dropped.Load(), goroutines*perG)
	}
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	results := map[string]int{}
	for _, ln := range lines {
		if !want[ln.DecisionID] {
			t.Errorf("line for decision %q, which no caller got (or twice)", ln.DecisionID)
		}
		delete(want, ln.DecisionID)
		results[ln.Result+" "+ln.Code]++
		if ln.Phone != nil || ln.Message != nil || ln.StoreNS == nil || ln.TotalNS == nil || ln.Time.IsZero() {
			t.Errorf("line %+v: want no phone and no message, and times", ln)
		}
		if ln.PolicyRevision != "pol123" || ln.ConfigRevision != "cfg456" {
			t.Errorf("revisions %q %q", ln.PolicyRevision, ln.ConfigRevision)
		}
		if ln.Instance == "shop" && ln.Code != "recipient_suppressed" && (ln.PhoneHMAC == "" || len(ln.PhoneHMAC) != 64) {
			t.Errorf("line %+v: want a phone_hmac", ln)
		}
		if ln.RiskScore != nil && (ln.Input == nil || len(ln.Input.Signals) != 20 || ln.Input.Instance.ID != ln.Instance || ln.PolicyResult == "") {
			t.Errorf("line %+v: want the policy input with the 20 signals, and the policy's result, with the score", ln)
		}
		if ln.Result == "denied" && ln.Code == "invalid_api_key" && ln.KeyID != "" {
			t.Errorf("an unknown key has a key id: %+v", ln)
		}
	}
	if len(want) != 0 {
		t.Errorf("%d decisions have no line", len(want))
	}
	for _, r := range []string{"allowed ", "denied invalid_api_key", "denied message_purpose_not_allowed", "denied instance_paused_for_review", "denied invalid_instance", "denied policy_violation"} {
		if results[r] == 0 {
			t.Errorf("no line with result %q; got %v", r, results)
		}
	}
}

type counter struct{ n *atomic.Int64 }

func (c counter) Inc() { c.n.Add(1) }

// blockingSink blocks every Add until release is closed.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (s *blockingSink) Add([]byte, *Record) error {
	<-s.release
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}
func (s *blockingSink) Idle() error  { return nil }
func (s *blockingSink) Tick() error  { return nil }
func (s *blockingSink) Close() error { return nil }

// TestBlockedSinkDropsAndCounts: with the sink stuck, every decision still
// returns; what does not fit the buffer is dropped and counted, and what
// did fit is written once the sink moves again.
func TestBlockedSinkDropsAndCounts(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	var dropped atomic.Int64
	l, err := New(Options{Sink: sink, Buffer: 16, Phone: PhoneOmit, Dropped: counter{&dropped}})
	if err != nil {
		t.Fatal(err)
	}
	d := Wrap(newDecider(t), l)
	const goroutines, perG = 8, 50
	finished := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range perG {
					if _, err := d.Decide(context.Background(), sendRequest(g*perG+i)); err != nil {
						t.Errorf("Decide: %v", err)
					}
				}
			})
		}
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(2 * time.Minute): // a hang, not a timing assertion
		t.Fatal("decisions blocked on a stuck decision-log sink")
	}
	if dropped.Load() == 0 || dropped.Load() != l.Dropped() {
		t.Fatalf("dropped = %d (logger says %d), want > 0 and equal", dropped.Load(), l.Dropped())
	}
	close(sink.release)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := int64(sink.n) + dropped.Load(); got != goroutines*perG {
		t.Errorf("written %d + dropped %d = %d, want %d decisions", sink.n, dropped.Load(), got, goroutines*perG)
	}
	if sink.n > 16+1 {
		t.Errorf("written %d, more than the buffer (16) and the one record in hand", sink.n)
	}
}

// TestShutdownFlushes: Close writes every accepted record before it
// returns, without waiting for a tick; a record logged after Close is
// dropped and counted, not lost silently or panicking.
func TestShutdownFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.log")
	sink, err := NewFileSink(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Sink: sink, Buffer: 1000, PhoneKey: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		l.Log(Record{Time: time.Unix(int64(i), 0), Result: decision.Result{ID: fmt.Sprint("d", i), Send: true, Allowed: true, Phone: "+966501234567"}})
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if n := len(readLines(t, data)); n != 500 {
		t.Errorf("after Close: %d lines, want 500", n)
	}
	l.Log(Record{})
	if l.Dropped() != 1 {
		t.Errorf("a record after Close: dropped = %d, want 1", l.Dropped())
	}
}

// TestFileRotation: the file rotates before a line would pass the size,
// keeps the configured number of old files, and never splits a line. (Lines
// from the logger's shards may interleave, so order is not checked.)
func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.log")
	sink, err := NewFileSink(path, 4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Sink: sink, Buffer: 10000, Phone: PhoneOmit})
	if err != nil {
		t.Fatal(err)
	}
	// Ten rounds of 40, each written before the next is logged, so that
	// rounds reach the files in order.
	for round := range 10 {
		for i := range 40 {
			l.Log(Record{Result: decision.Result{ID: fmt.Sprintf("dec-%04d", round*40+i), Send: true, Allowed: true}})
		}
		waitFor(t, func() bool { return l.Written() == int64(round+1)*40 })
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Fatalf("files %v, want d.log, d.log.1 and d.log.2", files)
	}
	seen := map[string]bool{}
	lastRound := -1
	for _, f := range []string{path + ".2", path + ".1", path} {
		data, _ := os.ReadFile(f)
		if len(data) > 4096 || len(data) == 0 {
			t.Errorf("%s: %d bytes, want 1 to 4096", f, len(data))
		}
		for _, ln := range readLines(t, data) {
			if seen[ln.DecisionID] {
				t.Errorf("%s: %s twice", f, ln.DecisionID)
			}
			seen[ln.DecisionID] = true
			var n int
			fmt.Sscanf(ln.DecisionID, "dec-%d", &n)
			if n/40 < lastRound {
				t.Errorf("%s: %s (round %d) after round %d", f, ln.DecisionID, n/40, lastRound)
			}
			lastRound = max(lastRound, n/40)
		}
	}
	// 400 lines of ~230 bytes do not fit three files of 4 KiB: the oldest
	// went with the rotation, and the last round is all there.
	if len(seen) == 400 {
		t.Errorf("all 400 lines kept in three files of 4 KiB")
	}
	for i := 360; i < 400; i++ {
		if !seen[fmt.Sprintf("dec-%04d", i)] {
			t.Errorf("dec-%04d, of the last round, is not in the files", i)
		}
	}
}

// TestAppendString: every string, valid UTF-8 or not, becomes a JSON
// string that decodes to what encoding/json makes of it.
func TestAppendString(t *testing.T) {
	for _, s := range append(multilingual, "", "\x00\x1f\x7f", "\xff\xfe bad \xc3", "\u2029", `"\`, "emoji 👨‍👩‍👧 zwj", strings.Repeat("é", 100)) {
		b := appendString(nil, s)
		var got, want string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: %v", s, b, err)
		}
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Errorf("appendString(%q) decodes to %q, want %q", s, got, want)
		}
	}
}

// TestObserveSeesEveryWrittenRecord: Options.Observe sees each record the
// sink took, once, on the writer goroutine; records logged from many
// goroutines all arrive.
func TestObserveSeesEveryWrittenRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.log")
	sink, err := NewFileSink(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{} // only the writer goroutine touches it
	l, err := New(Options{Sink: sink, Buffer: 1000, PhoneKey: []byte("k"), Observe: func(r *Record) { seen[r.Result.ID]++ }})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				l.Log(Record{Time: time.Unix(int64(i), 0), Result: decision.Result{ID: fmt.Sprintf("d%d-%d", g, i), Send: true, Instance: "inst_a"}})
			}
		}()
	}
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 400 {
		t.Errorf("Observe saw %d distinct records, want 400", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("Observe saw %s %d times, want once", id, n)
		}
	}
}
