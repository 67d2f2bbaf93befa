package benchreport

import (
	"strings"
	"testing"
	"time"
)

func TestParseCacheCounters(t *testing.T) {
	text := `# HELP sendguard_policy_memo_hits_total Decisions answered from the memo.
# TYPE sendguard_policy_memo_hits_total counter
sendguard_policy_memo_hits_total 9950
sendguard_policy_memo_misses_total 50
sendguard_policy_memo_entries 50
sendguard_text_cache_hits_total{cache="scan"} 1.2e+06
sendguard_decisions_total{code="allowed"} 10000
`
	got, err := ParseCacheCounters(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"sendguard_policy_memo_hits_total": 9950, "sendguard_policy_memo_misses_total": 50, `sendguard_text_cache_hits_total{cache="scan"}`: 1.2e6}
	if len(got) != len(want) {
		t.Fatalf("ParseCacheCounters = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ParseCacheCounters[%s] = %v, want %v", k, got[k], v)
		}
	}
	if _, err := ParseCacheCounters(strings.NewReader("x_hits_total NaNx\n")); err == nil {
		t.Error("ParseCacheCounters(a bad value) = nil error")
	}
}

// TestCacheTotals: each process counts once, with its last reading; a
// process ends at a scrape the server did not answer or at a counter that
// went down (a restart between two scrapes).
func TestCacheTotals(t *testing.T) {
	at := time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC)
	up := func(h, m float64) Scrape {
		at = at.Add(time.Second)
		return Scrape{At: at, Up: true, Values: map[string]float64{"m_hits_total": h, "m_misses_total": m}}
	}
	down := Scrape{Up: false}
	scrapes := []Scrape{
		down,
		up(0, 1), up(90, 10), up(190, 10), // process 1: 190 / 10
		down, down,
		up(5, 5), up(300, 20), // process 2: 300 / 20
		up(10, 1), up(40, 2), // restarted without a gap: 40 / 2
	}
	got := HitRates(CacheTotals(scrapes))
	if len(got) != 1 || got[0].Series != "m" || got[0].Hits != 530 || got[0].Misses != 32 {
		t.Fatalf("HitRates = %+v, want m: 530 hits, 32 misses", got)
	}
	if r := got[0].Rate(); r < 0.943 || r > 0.944 {
		t.Errorf("Rate = %v, want 530/562", r)
	}
	if (HitRate{}).Rate() != 0 {
		t.Error("the rate of no lookups is not 0")
	}
	labelled := HitRates(map[string]float64{`c_hits_total{cache="scan"}`: 3, `c_misses_total{cache="scan"}`: 1, `c_hits_total{cache="body"}`: 1})
	if len(labelled) != 2 || labelled[0].Series != `c{cache="body"}` || labelled[0].Misses != 0 || labelled[1].Series != `c{cache="scan"}` || labelled[1].Misses != 1 {
		t.Errorf("HitRates(labelled) = %+v", labelled)
	}
}

func TestCacheMarkdown(t *testing.T) {
	var b strings.Builder
	CacheMarkdown(&b, []HitRate{{Series: "sendguard_policy_memo", Hits: 99500, Misses: 500}}, 300)
	want := "\nsendguard's caches over its rounds (all its closed- and open-loop runs; /metrics read each second):\n\n" +
		"| cache | hits | misses | hit rate |\n|---|--:|--:|--:|\n| `sendguard_policy_memo` | 99,500 | 500 | 99.5 % |\n"
	if b.String() != want {
		t.Errorf("CacheMarkdown = %q, want %q", b.String(), want)
	}
	b.Reset()
	CacheMarkdown(&b, nil, 7)
	if !strings.Contains(b.String(), "not read during the run (7 scrapes)") {
		t.Errorf("CacheMarkdown(none) = %q", b.String())
	}
}
