package optout_test

import (
	"sort"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/model/modeltest"
	"github.com/sendguard/sendguard/internal/optout"
)

// TestHeldOutIntent runs the held-out part of the inbound corpus through
// what serve runs: the lists, then the embedded model at the default
// thresholds. The floors were set from the first honest run (README,
// Detection); the targets are higher (accuracy and opt-out recall
// 97%, false opt-outs 0.5%), and the log says where it stands.
func TestHeldOutIntent(t *testing.T) {
	// First honest run (corpus branches h9-corpus-a 77dd7be, h9-corpus-b
	// 808229b, 2,069 held-out replies in 23 language variants): accuracy
	// 92.5%, opt-out recall 94.6%, false opt-outs 6.03%. With the corpus
	// grown to 22,279 replies (4,454 held out): 91.6%, 94.5%, 6.44%.
	// Stop 33 (386,851 replies, 77,411 held out, models through round 164,
	// the first clause under FirstClauseFloor): 97.3%, 96.3%, 0.93%; the
	// floors follow that run, a point under it (the false opt-outs half a
	// point over).
	intentFloors(t, "held out", model.Select(modeltest.Corpus(t, model.Inbound), model.TestSplit), 0.96, 0.95, 0.015)
}

// TestFreshIntent holds the decision to floors on internal/model/testdata/fresh
// (720 replies written without reading the corpus, never trained on). First
// run, with the models of the 22,279-reply corpus: accuracy 97.6%, opt-out
// recall 98.6%, false opt-outs 2.78%. 127 of its replies also occur in the
// corpus (mostly short ones: "unsub", "ini siapa ya?"); without them:
// 97.1%, 98.3%, 3.37%.
func TestFreshIntent(t *testing.T) {
	intentFloors(t, "fresh", modeltest.Fresh(t, model.Inbound), 0.97, 0.97, 0.015) // stop 33: 98.9%, 99.3%, 0.69%
}

// intentFloors decides ex as serve does (the lists, then the embedded
// model) and fails when a figure is past its floor or ceiling.
func intentFloors(t *testing.T, name string, ex []model.Example, floorAccuracy, floorOptOutRecall, ceilFalseOptOut float64) {
	t.Helper()
	m, err := model.Embedded(model.Inbound)
	if err != nil {
		t.Fatal(err)
	}
	lists := optout.New(optout.DefaultLists())
	d := lists.WithModel(optout.Model{Scorer: m})
	classes := model.Classes(model.Inbound)
	index := func(in optout.Intent) int {
		for i, c := range classes {
			if c == string(in) {
				return i
			}
		}
		return -1
	}
	r := model.Evaluate(classes, ex, func(s string) int { return index(d.Classify(s).Intent) })
	base := model.Evaluate(classes, ex, func(s string) int { return index(lists.Classify(s).Intent) })
	optOut, others := []int{0}, []int{1, 2}
	acc, recall, falseOut := r.Accuracy(), r.Recall(0), r.Rate(others, optOut)
	t.Logf("%s, %d replies: accuracy %.1f%%, opt-out recall %.1f%%, false opt-outs %.2f%% of the others, opt-in recall %.1f%% (lists alone: %.1f%%, %.1f%%, %.2f%%)",
		name, r.Total, 100*acc, 100*recall, 100*falseOut, 100*r.Recall(1), 100*base.Accuracy(), 100*base.Recall(0), 100*base.Rate(others, optOut))
	langs := make([]string, 0, len(r.Langs))
	for l := range r.Langs {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, l := range langs {
		row := r.Langs[l]
		t.Logf("  %-8s %4d  accuracy %5.1f%%  opt-out %d/%d", l, row.Total, 100*float64(row.Correct)/float64(row.Total), row.PerClass[0][1], row.PerClass[0][0])
	}
	if acc < floorAccuracy || recall < floorOptOutRecall || falseOut > ceilFalseOptOut {
		t.Errorf("%s: accuracy %.1f%% (floor %.0f%%), opt-out recall %.1f%% (floor %.0f%%), false opt-outs %.2f%% (ceiling %.1f%%)",
			name, 100*acc, 100*floorAccuracy, 100*recall, 100*floorOptOutRecall, 100*falseOut, 100*ceilFalseOptOut)
	}
}

// TestClauseDecides: a reply whose stop request is one clause of a longer
// message is an opt-out even when the whole message scores below the
// threshold, and only through the clause (ClauseThreshold 1 turns that off).
// Of the candidates, those the embedded model scores below the threshold as
// a whole are checked against the clause line: one whose best clause
// reaches DefaultClauseThreshold must be an opt-out by that clause, one
// whose clauses all score under it must not be (the models through round
// 212 score "Quítenme de todo" 0.976, under the line of 0.98, and the
// serve path misses that reply). A retrained model must leave at least one
// candidate that a clause decides.
func TestClauseDecides(t *testing.T) {
	m, err := model.Embedded(model.Inbound)
	if err != nil {
		t.Fatal(err)
	}
	d := optout.New(optout.DefaultLists())
	decided := 0
	for _, msg := range []string{
		"My order from last week arrived on time and the driver was very kind, the packaging was good and the invoice was correct, thank you for that. STOP messaging me.",
		"I called the branch on Tuesday about the card, they fixed the limit and the new PIN works fine now, all good with the account. Unsubscribe me.",
		"The plumber came at 4, fixed the leak under the sink, cleaned up after himself and the bill matched the quote. No more messages please.",
		"De la farmacia solo quería la receta, no un mensaje cada día. Quítenme de todo.",
		"Die Lieferung kam pünktlich, der Fahrer war freundlich und die Rechnung stimmt auch. Bitte schicken Sie mir keine Nachrichten mehr.",
		"Заказ пришёл вовремя, курьер вежливый, всё в порядке с оплатой. Больше не пишите мне, пожалуйста.",
	} {
		s := m.Scores(msg)
		if s.OptOut >= optout.DefaultOptOutThreshold {
			continue
		}
		cs, first := optout.Clauses(msg), 0
		if s.OptOut < optout.DefaultFirstClauseFloor {
			first = 1 // the first clause is an interjection under the floor
		}
		best := 0.0
		for _, c := range cs[min(first, len(cs)):min(len(cs), optout.MaxClauses)] {
			best = max(best, m.Scores(c).OptOut)
		}
		got := d.WithModel(optout.Model{Scorer: m}).Classify(msg)
		byClause := got.Intent == optout.OptOut && got.Clause != "" && got.Model != nil && got.Model.OptOut >= optout.DefaultClauseThreshold
		if want := best >= optout.DefaultClauseThreshold; byClause != want {
			t.Errorf("Classify(%q) = %+v with its best clause at %.3f: opt-out by a clause %v, want %v", msg, got, best, byClause, want)
		}
		if byClause {
			decided++
			t.Logf("%q: by the clause %q at %.3f", msg, got.Clause, got.Model.OptOut)
		} else {
			t.Logf("%q: best clause %.3f, under the clause line %.2f", msg, best, optout.DefaultClauseThreshold)
		}
		if got := d.WithModel(optout.Model{Scorer: m, ClauseThreshold: 1}).Classify(msg); got.Intent == optout.OptOut || got.Clause != "" {
			t.Errorf("Classify(%q) with clauses off = %+v, want no opt-out", msg, got)
		}
	}
	if decided == 0 {
		t.Fatal("no candidate is decided by a clause (each scores an opt-out as a whole, or its clauses under the clause line): add a candidate the clause decides")
	}
}

// TestFirstClauseFloor: a reply that opens with "Stop," and goes on about
// something else is not an opt-out by that first clause when the whole
// reply scores under FirstClauseFloor; with a floor low enough the same
// clause decides, so the floor is what holds it back. Candidates the
// embedded model does not score that way are skipped; a retrained model
// must leave at least one. From many goroutines at once.
func TestFirstClauseFloor(t *testing.T) {
	m, err := model.Embedded(model.Inbound)
	if err != nil {
		t.Fatal(err)
	}
	lists := optout.New(optout.DefaultLists())
	d := lists.WithModel(optout.Model{Scorer: m})
	low := lists.WithModel(optout.Model{Scorer: m, FirstClauseFloor: 1e-9})
	var held []string
	for _, msg := range []string{
		"Stop - the reg on that invoice is wrong, it's KX21 not KX12",
		"Stopp, warten Sie, ich hab die falsche Passseite geschickt, kommt gleich nochmal",
		"Стоп, а почему в квитанции 32 тысячи? договаривались на 28",
		"stop, el 3enwan ghalat, el warsha fi sina3iya 12 msh 13",
		"stop, j'ai mal lu, c'est 15 kg de lentilles pas 50, corrigez svp",
	} {
		cs := optout.Clauses(msg)
		if lists.Classify(msg).Intent != optout.None || m.Scores(msg).OptOut >= optout.DefaultFirstClauseFloor ||
			len(cs) < 2 || m.Scores(cs[0]).OptOut < optout.DefaultClauseThreshold {
			continue
		}
		if r := low.Classify(msg); r.Intent != optout.OptOut || r.Clause != cs[0] {
			t.Errorf("Classify(%q) with no floor = %+v, want opt_out by %q", msg, r, cs[0])
		}
		held = append(held, msg)
	}
	if len(held) == 0 {
		t.Fatal("the embedded model scores no candidate as an opening clause under the floor: add one it does")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				msg := held[(g+i)%len(held)]
				if r := d.Classify(msg); r.Intent == optout.OptOut {
					t.Errorf("Classify(%q) = %+v, want no opt-out: its first clause is under the floor", msg, r)
					return
				}
			}
		})
	}
	wg.Wait()
	// A request after a story is still read: the floor is the first clause's.
	msg := "My order from last week arrived on time and the driver was very kind, the packaging was good and the invoice was correct, thank you for that. STOP messaging me."
	if r := d.Classify(msg); m.Scores(msg).OptOut < optout.DefaultFirstClauseFloor && (r.Intent != optout.OptOut || r.Clause == "") {
		t.Errorf("Classify(%q) = %+v, want opt_out by its last clause", msg, r)
	}
}

// A clock time within TimeWindow words after a phrase of the lists hands
// the reply to the model (a change of time is none). The replies of the
// corpus that this hands over and that are real opt-outs must stay
// opt-outs: the shipped model decides them, from many goroutines at once.
func TestTimeAfterPhraseModelDecides(t *testing.T) {
	m, err := model.Embedded(model.Inbound)
	if err != nil {
		t.Fatal(err)
	}
	lists := optout.New(optout.DefaultLists())
	d := lists.WithModel(optout.Model{Scorer: m})
	handed := []string{
		"whoever this is stop texting me at 6am about yoga",
		"whoever is running this account, stop messaging me at 2am",
		"இனிமே மெசேஜ் அனுப்பாதீங்க ப்ளீஸ். காலை 5 மணிக்கு எழுந்திருக்கணும், போன் சத்தத்துல தூக்கம் போகுது",
	}
	for _, msg := range handed {
		if r := lists.Classify(msg); r.Intent != optout.None {
			t.Errorf("lists.Classify(%q) = %s by %q, want none: the clock time after the phrase hands it to the model", msg, r.Intent, r.Matched)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				msg := handed[(g+i)%len(handed)]
				if r := d.Classify(msg); r.Intent != optout.OptOut {
					t.Errorf("Classify(%q) = %+v, want opt_out by the model", msg, r)
					return
				}
			}
		})
	}
	wg.Wait()
}
