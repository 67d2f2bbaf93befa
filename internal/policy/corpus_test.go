package policy

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/risk"
)

// TestOutboundCorpus scores a labelled corpus of outbound messages, half
// of them legitimate transactional messages with tricky wording, through
// the real scanner and the embedded Rego, and requires precision and recall
// of "block" (policy_violation) of at least 90%.
func TestOutboundCorpus(t *testing.T) {
	total, langs, precision, recall := scoreCorpus(t, "testdata/outbound.tsv")
	if total < 150 || len(langs) < 5 {
		t.Errorf("corpus of %d messages in %d languages; want at least 150 in 5", total, len(langs))
	}
	if precision < 0.9 || recall < 0.9 {
		t.Errorf("precision %.1f%%, recall %.1f%%: both must be at least 90%%", 100*precision, 100*recall)
	}
}

// TestHoldoutCorpus scores messages written after the vocabulary and the
// corpus above and never used to tune either: how the scorer does on
// wording it has not seen. Its misses are kept, not fixed by editing the
// lists to fit them; add a new held-out file instead. The floor is lower
// than the tuned corpus's, and the log says where it stands.
func TestHoldoutCorpus(t *testing.T) {
	_, _, precision, recall := scoreCorpus(t, "testdata/holdout.tsv")
	if precision < 0.9 || recall < 0.8 {
		t.Errorf("held out: precision %.1f%% (floor 90%%), recall %.1f%% (floor 80%%)", 100*precision, 100*recall)
	}
}

func scoreCorpus(t *testing.T, path string) (total int, langs map[string]int, precision, recall float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := engine(t, Options{CacheEntries: -1})
	sc := risk.New(risk.Options{})
	var tp, fp, fn, tn int
	langs = map[string]int{}
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		p := strings.SplitN(line, "\t", 3)
		lang, label, text := p[0], p[1], p[2]
		langs[lang]++
		d, err := e.Eval(context.Background(), Input{Purpose: "transactional", PurposePresent: true, Signals: sc.Scan(text)})
		if err != nil {
			t.Fatal(err)
		}
		blocked := d.Error == "policy_violation"
		switch {
		case blocked && label == "block":
			tp++
		case blocked:
			fp++
			t.Logf("false positive [%s] score %d: %s", lang, d.RiskScore, text)
		case label == "block":
			fn++
			t.Logf("missed [%s] score %d: %s", lang, d.RiskScore, text)
		default:
			tn++
		}
	}
	total = tp + fp + fn + tn
	precision = float64(tp) / float64(max(1, tp+fp))
	recall = float64(tp) / float64(max(1, tp+fn))
	t.Logf("%s: %d messages %v: precision %.1f%%, recall %.1f%% (tp %d, fp %d, fn %d, tn %d)", path, total, langs, 100*precision, 100*recall, tp, fp, fn, tn)
	return total, langs, precision, recall
}
