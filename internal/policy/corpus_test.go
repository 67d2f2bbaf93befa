package policy

import (
	"bufio"
	"context"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/model/modeltest"
	"github.com/sendguard/sendguard/internal/risk"
)

// TestOutboundCorpus scores a labelled corpus of outbound messages, half
// of them legitimate transactional messages with tricky wording, through
// the real scanner and the embedded Rego, and requires precision and recall
// of "block" (policy_violation) of at least 90%.
func TestOutboundCorpus(t *testing.T) {
	total, langs, precision, recall := scoreCorpus(t, "testdata/outbound.tsv", risk.New(risk.Options{}))
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
	_, _, precision, recall := scoreCorpus(t, "testdata/holdout.tsv", risk.New(risk.Options{}))
	if precision < 0.9 || recall < 0.8 {
		t.Errorf("held out: precision %.1f%% (floor 90%%), recall %.1f%% (floor 80%%)", 100*precision, 100*recall)
	}
}

// TestCorporaWithTheModel scores the two corpora above as serve does, with
// the embedded content model's signals: neither corpus was written for the
// model nor used to train it. The first honest run blocked one legitimate
// message of outbound.tsv ("Thanks for voting in our customer survey,
// ticket 3321 closed.": 80% promotional to the model) and none of
// holdout.tsv; the floor allows that one and no more (a second false
// positive in either file fails).
func TestCorporaWithTheModel(t *testing.T) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	sc := risk.New(risk.Options{Model: m})
	for _, path := range []string{"testdata/outbound.tsv", "testdata/holdout.tsv"} {
		_, _, precision, recall := scoreCorpus(t, path, sc)
		if precision < 0.98 || recall < 0.9 {
			t.Errorf("%s with the model: precision %.1f%% (floor 98%%), recall %.1f%% (floor 90%%)", path, 100*precision, 100*recall)
		}
	}
}

// TestHeldOutContent runs the held-out part of the detection corpus
// (internal/model/testdata/outbound) through the real scanner with the
// embedded model and the embedded Rego, every message declared
// transactional (an allowed purpose: the disguise). Floors from the first
// honest run (README, Detection); the targets: 85% of violations
// blocked, 90% blocked or slowed, at most 1% of legitimate messages blocked
// and 3% slowed.
func TestHeldOutContent(t *testing.T) {
	// First honest run (corpus branches h9-corpus-a 77dd7be, h9-corpus-b
	// 808229b; 975 violations and 971 legitimate messages held out): 77.4%
	// blocked, 86.9% blocked or slowed, 1.24% of legitimate messages
	// blocked, 2.16% slowed. Then the model's points became each class's
	// lead over p_transactional (an unsure model blocked 58 of the bench
	// harness's 800 legitimate sends, "Track your shipment here: bit.ly/…"):
	// 73.2% blocked, 75.0% blocked or slowed, 0.93% and 0.10% of legitimate
	// messages blocked and slowed. Then a class at its throttle line
	// (model.throttle_at, 40 %) slowed the send (chosen on out-of-fold
	// predictions and on text by writers the model had not seen, not on
	// this split), with the corpus grown to 14,612 messages: 79.5%
	// blocked, 91.6% blocked or slowed, 0.91% and 2.36% of legitimate
	// messages blocked and slowed. Then model weights 150 and the corpus at
	// 18,515 messages (3,665 held out): 84.0%, 93.0%, 0.80%, 2.58%. The
	// floors follow that run. Then (corpus round 21, 43,754 messages, 8,670
	// held out) the throttle line of promotional and cold outreach went
	// from 40 to 45, chosen on corpus rounds 18 to 21 scored before each
	// was trained on (legitimate messages slowed 4.2-6.0% there, 2.9-4.5%
	// after): 82.8%, 91.3% (92.1% at 40), 0.52%, 0.98% (1.36% at 40); the
	// blocked-or-slowed floor followed it to 90%, the target.
	// Then corpus rounds 25 to 30 (52,974 messages, 10,485 held out), 85%
	// of their new messages legitimate: 81.9%, 89.9%, 0.38%, 0.54%. On the
	// held-out lines of rounds 1 to 24 alone the models through 30 give
	// 81.4%, 89.6%, 0.30%, 0.60%, against 82.5%, 90.6%, 0.36%, 1.02% with
	// the models through 24: the new data moved the model towards
	// transactional (fewer legitimate messages slowed, a point fewer of the
	// old stress rounds' violations caught). On rounds 25, 27, 28 and 29,
	// each scored before it was trained on, the models blocked or slowed
	// 95.5-99.3% of violations, slowed 1.1-1.4% of legitimate messages, and
	// a throttle line of 40 there caught no more and slowed 0.2-0.7 points
	// more legitimate ones, so the line stays at 45 and the floors follow
	// this run down by a point. With round 31 (54,164 messages, 10,732
	// held out): 81.8%, 90.0%, 0.30%, 0.60%. With rounds 32 to 40 (63,684
	// messages, 12,600 held out): 80.9%, 89.0%, 0.28%, 0.43%. On the
	// held-out lines of the corpus through round 39 the models through 40
	// give 80.8% and 89.0%, against 81.4% and 89.2% with the models through
	// 39: training on round 40 moved the model, not the split. Rounds 36 to
	// 40, each scored before it was trained on, were blocked 87.6-95.3% and
	// blocked or slowed 94.7-97.6%, with 0.2-0.5% of legitimate messages
	// blocked; the floors follow this run down by a point. Stop 33 (209,915
	// messages, 41,816 held out, models through round 164): the block lines
	// went to 50 and the throttle lines to 25, chosen on corpus rounds 149
	// to 164 scored before each was trained on; 84.0% -> 88.8%, 90.4% ->
	// 94.6%, 0.20% -> 0.20%, 0.20% -> 0.60%. The floors follow that run,
	// a point or two under it.
	contentFloors(t, "held out", model.Select(modeltest.Corpus(t, model.Outbound), model.TestSplit), 0.87, 0.93, 0.006, 0.012)
}

// TestFreshContent does the same on internal/model/testdata/fresh (540
// messages written without reading the corpus, never trained on). First
// run, with the models of the 18,515-message corpus: 91.4% of violations
// blocked, 97.8% blocked or slowed, 3.24% of legitimate messages blocked
// (7 of 216) and 1.39% slowed: past the 1% target for legitimate messages,
// which the ceiling records rather than hides.
func TestFreshContent(t *testing.T) {
	contentFloors(t, "fresh", modeltest.Fresh(t, model.Outbound), 0.93, 0.96, 0.01, 0.02) // stop 33: 95.7%, 98.1%, 0%, 0.93%
}

// contentFloors runs ex through the real scanner with the embedded model
// and the embedded Rego, every message declared transactional (an allowed
// purpose: the disguise), and fails when a figure is past its floor or
// ceiling.
func contentFloors(t *testing.T, name string, ex []model.Example, floorBlocked, floorBlockedSlowed, ceilLegitBlocked, ceilLegitSlowed float64) {
	t.Helper()
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	e := engine(t, Options{CacheEntries: -1})
	withModel, native := risk.New(risk.Options{Model: m}), risk.New(risk.Options{})
	type tally struct{ bad, badBlocked, badSlowed, legit, legitBlocked, legitSlowed int }
	count := func(sc *risk.Scanner, log bool) (tally, map[string]*tally) {
		var all tally
		langs := map[string]*tally{}
		for _, x := range ex {
			d, err := e.Eval(context.Background(), Input{Purpose: "transactional", PurposePresent: true, Signals: sc.Scan(x.Text)})
			if err != nil {
				t.Fatal(err)
			}
			l := langs[x.Lang]
			if l == nil {
				l = &tally{}
				langs[x.Lang] = l
			}
			blocked, slowed := d.Error == "policy_violation", d.Allow && d.Throttle
			for _, c := range []*tally{&all, l} {
				if x.Label == "transactional" {
					c.legit++
					c.legitBlocked += b2i(blocked)
					c.legitSlowed += b2i(slowed)
				} else {
					c.bad++
					c.badBlocked += b2i(blocked)
					c.badSlowed += b2i(slowed)
				}
			}
			if log && x.Label == "transactional" && blocked {
				t.Logf("legitimate blocked [%s] score %d: %s", x.Lang, d.RiskScore, x.Text)
			}
		}
		return all, langs
	}
	pct := func(a, b int) float64 { return float64(a) / float64(max(1, b)) }
	all, langs := count(withModel, true)
	base, _ := count(native, false)
	blocked, blockedSlowed := pct(all.badBlocked, all.bad), pct(all.badBlocked+all.badSlowed, all.bad)
	legitBlocked, legitSlowed := pct(all.legitBlocked, all.legit), pct(all.legitSlowed, all.legit)
	t.Logf("%s, %d violations and %d legitimate messages: blocked %.1f%%, blocked or slowed %.1f%%; legitimate blocked %.2f%%, slowed %.2f%% (native signals alone: %.1f%%, %.1f%%, %.2f%%, %.2f%%)",
		name, all.bad, all.legit, 100*blocked, 100*blockedSlowed, 100*legitBlocked, 100*legitSlowed,
		100*pct(base.badBlocked, base.bad), 100*pct(base.badBlocked+base.badSlowed, base.bad), 100*pct(base.legitBlocked, base.legit), 100*pct(base.legitSlowed, base.legit))
	names := make([]string, 0, len(langs))
	for l := range langs {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		c := langs[l]
		t.Logf("  %-8s violations blocked %d/%d, slowed %d; legitimate blocked %d/%d, slowed %d", l, c.badBlocked, c.bad, c.badSlowed, c.legitBlocked, c.legit, c.legitSlowed)
	}
	if blocked < floorBlocked || blockedSlowed < floorBlockedSlowed || legitBlocked > ceilLegitBlocked || legitSlowed > ceilLegitSlowed {
		t.Errorf("%s: blocked %.1f%% (floor %.0f%%), blocked or slowed %.1f%% (floor %.0f%%), legitimate blocked %.2f%% (ceiling %.0f%%), slowed %.2f%% (ceiling %.0f%%)",
			name, 100*blocked, 100*floorBlocked, 100*blockedSlowed, 100*floorBlockedSlowed, 100*legitBlocked, 100*ceilLegitBlocked, 100*legitSlowed, 100*ceilLegitSlowed)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func scoreCorpus(t *testing.T, path string, sc *risk.Scanner) (total int, langs map[string]int, precision, recall float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := engine(t, Options{CacheEntries: -1})
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
