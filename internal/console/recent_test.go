package console

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecentRing(t *testing.T) {
	r := NewRecent(3)
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for i := range 5 {
		r.Add("inst_a", Decision{Time: t0.Add(time.Duration(i) * time.Minute), ID: fmt.Sprint("d", i), Allowed: true})
	}
	var ids []string
	for _, d := range r.Last("inst_a") {
		ids = append(ids, d.ID)
	}
	if want := []string{"d4", "d3", "d2"}; !cmp.Equal(ids, want) {
		t.Errorf("Last(inst_a) = %v, want %v", ids, want)
	}
	if got := r.Last("inst_none"); got != nil {
		t.Errorf("Last(inst_none) = %v, want nil", got)
	}
	r.Add("", Decision{ID: "no instance"})
	if got := r.Last(""); got != nil {
		t.Errorf("Last(\"\") = %v, want nil: a decision without an instance is not kept", got)
	}
}

func TestTopRefusals(t *testing.T) {
	r := NewRecent(2) // the ring is small; the counts are not limited by it
	now := time.Date(2026, 1, 2, 12, 30, 0, 0, time.UTC)
	add := func(ago time.Duration, code string, n int) {
		for range n {
			r.Add("inst_a", Decision{Time: now.Add(-ago), Code: code})
		}
	}
	add(0, "recipient_suppressed", 2)
	add(5*time.Hour, "recipient_suppressed", 1)
	add(23*time.Hour, "daily_quota_exceeded", 3)
	add(24*time.Hour, "policy_violation", 9) // the same hour a day ago, arriving late: out of the window, and must not wipe the current hour
	add(30*time.Hour, "policy_violation", 9)
	r.Add("inst_a", Decision{Time: now, Allowed: true})
	r.Add("inst_b", Decision{Time: now, Code: "instance_paused_for_review"})
	tests := []struct {
		name     string
		instance string
		at       time.Time
		want     []CodeCount
	}{
		{"now", "inst_a", now, []CodeCount{{"daily_quota_exceeded", 3}, {"recipient_suppressed", 3}}},
		{"an hour on", "inst_a", now.Add(time.Hour), []CodeCount{{"recipient_suppressed", 3}}},
		{"a day on", "inst_a", now.Add(24 * time.Hour), []CodeCount{}},
		{"other instance", "inst_b", now, []CodeCount{{"instance_paused_for_review", 1}}},
		{"unknown instance", "inst_none", now, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.TopRefusals(tc.instance, tc.at); !cmp.Equal(got, tc.want) {
				t.Errorf("TopRefusals(%q, %v) = %v, want %v", tc.instance, tc.at, got, tc.want)
			}
		})
	}
}

// TestRecentConcurrent: decisions of many instances from many goroutines,
// read meanwhile; under -race.
func TestRecentConcurrent(t *testing.T) {
	r := NewRecent(50)
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := fmt.Sprint("inst_", g%4)
			for i := range 200 {
				r.Add(inst, Decision{Time: now, Code: "recipient_suppressed", ID: fmt.Sprint(g, "-", i)})
				if i%50 == 0 {
					r.Last(inst)
					r.TopRefusals(inst, now)
				}
			}
		}()
	}
	wg.Wait()
	for i := range 4 {
		inst := fmt.Sprint("inst_", i)
		if got := r.TopRefusals(inst, now); len(got) != 1 || got[0].Count != 800 {
			t.Errorf("TopRefusals(%s) = %v, want recipient_suppressed 800", inst, got)
		}
		if n := len(r.Last(inst)); n != 50 {
			t.Errorf("len(Last(%s)) = %d, want 50", inst, n)
		}
	}
}

func TestRates(t *testing.T) {
	r := NewRates(time.Minute)
	t0 := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	if _, _, ok := r.PerSecond(t0, map[string]float64{"allowed": 1}); ok {
		t.Error("PerSecond with no sample: ok, want not")
	}
	r.Sample(t0, map[string]float64{"allowed": 100, "recipient_suppressed": 10})
	if _, _, ok := r.PerSecond(t0.Add(500*time.Millisecond), map[string]float64{"allowed": 101}); ok {
		t.Error("PerSecond half a second after the only sample: ok, want not")
	}
	got, span, ok := r.PerSecond(t0.Add(10*time.Second), map[string]float64{"allowed": 150, "recipient_suppressed": 10, "policy_violation": 5})
	want := map[string]float64{"allowed": 5, "recipient_suppressed": 0, "policy_violation": 0.5}
	if !ok || span != 10*time.Second || !cmp.Equal(got, want) {
		t.Errorf("PerSecond after 10s = %v, %v, %v; want %v over 10s", got, span, ok, want)
	}
	// Samples older than the window go.
	for i := 1; i <= 20; i++ {
		r.Sample(t0.Add(time.Duration(i)*5*time.Second), map[string]float64{"allowed": 100 + float64(i)*10})
	}
	got, span, ok = r.PerSecond(t0.Add(101*time.Second), map[string]float64{"allowed": 320})
	// The last sample (100s) kept those from 40s on (allowed 180 then).
	if want := (320.0 - 180) / 61; !ok || span != 61*time.Second || got["allowed"] != want {
		t.Errorf("PerSecond at 101s = %v over %v (%v); want allowed %v over 61s (since the sample at 40s)", got, span, ok, want)
	}
	// A counter that went back (a restart) counts from zero.
	if got, _, _ := r.PerSecond(t0.Add(101*time.Second), map[string]float64{"allowed": 3}); got["allowed"] <= 0 {
		t.Errorf("PerSecond after a counter reset = %v, want a positive rate", got)
	}
}

func TestEvents(t *testing.T) {
	ev := NewEvents(3)
	for i := range 5 {
		ev.Add(RecipientEvent{Phone: fmt.Sprint("+96650000000", i%2), EventID: fmt.Sprint("e", i)})
	}
	var ids []string
	for _, e := range ev.For("+966500000000") {
		ids = append(ids, e.EventID)
	}
	if want := []string{"e4", "e2"}; !cmp.Equal(ids, want) {
		t.Errorf("For(+966500000000) = %v, want %v (newest first; e0 fell out)", ids, want)
	}
}

// TestAuditFile: entries survive a reopen, a torn last line is skipped, and
// only the newest keep are shown.
func TestAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "audit.jsonl")
	a, err := OpenAudit(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := a.Append(Entry{Action: "pause", Reason: fmt.Sprint("r", i)}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"action":"lift","rea`) // a write cut short
	f.Close()
	b, err := OpenAudit(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var reasons []string
	for _, e := range b.Entries(nil) {
		reasons = append(reasons, e.Reason)
	}
	if want := []string{"r3", "r2", "r1"}; !cmp.Equal(reasons, want) {
		t.Errorf("entries after reopen = %v, want %v", reasons, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", st.Mode().Perm())
	}
	mem, _ := OpenAudit("", 0)
	if mem.Durable() || !b.Durable() {
		t.Errorf("Durable: memory %v, file %v; want false, true", mem.Durable(), b.Durable())
	}
}
