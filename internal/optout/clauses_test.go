package optout

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestClauses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"STOP", []string{"STOP"}},
		{"ok", nil},
		{"Thanks for the delivery. Please stop the offers!", []string{"Thanks for the delivery", "Please stop the offers"}},
		{"thanks for the delivery, but no more offers", []string{"thanks for the delivery", "no more offers"}},
		{"شكرا على التوصيل، لكن لا ترسلوا عروض", []string{"شكرا على التوصيل", "لا ترسلوا عروض"}},
		{"धन्यवाद। अब मैसेज बंद करो", []string{"धन्यवाद", "अब मैसेज बंद करो"}},
		{"ok so driving now - stop the freight updates", []string{"ok so driving now", "stop the freight updates"}},
		{"line one\nline two", []string{"line one", "line two"}},
		{"line one\r\nline two\rline three", []string{"line one", "line two", "line three"}},
		{"line one\u2028line two\u2029line three\u0085line four\vline five\fline six",
			[]string{"line one", "line two", "line three", "line four", "line five", "line six"}},
		{"nothing but trouble, nothing", []string{"nothing but trouble", "nothing"}},
		{"a, b", nil}, // both parts under three runes
		{"we're not doing an allotment next year, can you stop the texts", []string{"we're not doing an allotment next year", "can you stop the texts"}},
		{"Маша закончила занятия, уберите мой номер из группы", []string{"Маша закончила занятия", "уберите мой номер из группы"}},
		{"درمانم تموم شد، یادآوری نوبت‌ها رو دیگه نمی‌خوام", []string{"درمانم تموم شد", "یادآوری نوبت‌ها رو دیگه نمی‌خوام"}},
		{"ok, but, fine", []string{"fine"}}, // "ok" is too short; "but" is left out
		{"thanks,,, stop", []string{"thanks", "stop"}},
	} {
		if got := Clauses(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Clauses(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// clauseScorer scores opt_out 1 for a text holding "STOPME" and opt_in 1
// for "RESUME", counting its calls.
type clauseScorer struct{ calls *atomic.Int64 }

func (s clauseScorer) Scores(text string) Scores {
	s.calls.Add(1)
	var sc Scores
	if strings.Contains(text, "STOPME") {
		sc.OptOut = 1
	}
	if strings.Contains(text, "RESUME") {
		sc.OptIn = 1
	}
	if strings.ContainsAny(text, sentenceEnds) {
		sc.OptOut, sc.OptIn = sc.OptOut/4, sc.OptIn/4 // a long message dilutes both
	}
	return sc
}

func TestClassifyClauses(t *testing.T) {
	calls := &atomic.Int64{}
	d := New(DefaultLists()).WithModel(Model{Scorer: clauseScorer{calls}})
	many := strings.Repeat("thanks. ", 40) + "STOPME now."
	for _, tc := range []struct {
		in     string
		want   Intent
		clause string
	}{
		{"thanks for the delivery. STOPME please.", OptOut, "STOPME please"},
		{"thanks for the delivery\u2029STOPME please", OptOut, "STOPME please"},
		{"thanks for the delivery\rSTOPME please", OptOut, "STOPME please"},
		{"RESUME them. Actually no, STOPME.", OptOut, "STOPME"}, // opt-out wins
		{"we moved. so, STOPME", OptOut, "STOPME"},              // a request after a comma
		{"thanks for the delivery. all good.", None, ""},
		{"STOPME", OptOut, ""},      // the whole message decides; no clause
		{"unsubscribe", OptOut, ""}, // the lists decide alone
		{many, None, ""},            // past MaxClauses
	} {
		got := d.Classify(tc.in)
		if got.Intent != tc.want || got.Clause != tc.clause {
			t.Errorf("Classify(%q) = %+v, want %s (clause %q)", tc.in, got, tc.want, tc.clause)
		}
	}
	calls.Store(0)
	d.Classify(many)
	if n := calls.Load(); n != 1+MaxClauses {
		t.Errorf("Classify of %d clauses scored %d texts, want %d", len(Clauses(many)), n, 1+MaxClauses)
	}
}

// TestClassifyClausesConcurrent classifies multilingual replies from many
// goroutines (under -race in CI) and wants the sequential answers.
func TestClassifyClausesConcurrent(t *testing.T) {
	d := New(DefaultLists()).WithModel(Model{Scorer: clauseScorer{&atomic.Int64{}}})
	msgs := []string{
		"شكرا على التوصيل، لكن STOPME يا جماعة.", "धन्यवाद। STOPME करो 🙏", "Teşekkürler. STOPME lütfen",
		"ok 👍. see you", "e\u0301te\u0301. STOPME", "नमस्ते। RESUME करें", "merci, mais STOPME",
		"Sesli mesaj atmayın, yazın", "வாய்ஸ் மெசேஜ் அனுப்பாதீங்க", "மெசேஜ் அனுப்பாதீங்க", // a voice qualifier cancels the phrase
		"Sabah 7'de mesaj atmayın lütfen", "காலை ௭ மணிக்கு முன்னாடி மெசேஜ் அனுப்பாதீங்க", "mesaj atmayın, 2 kere söyledim", // so does a time before it
		"ana ma sajalt 3indkom aslan, delete my number", "3. kez söylüyorum NUMARAMI SİLİN", // other numbers do not
		"Не пишите мне в 7 утра, я после ночной смены сплю", "لا تراسلوني قبل ١٠ الصبح", // a time after it cancels it too
		"dejen de escribirme, el 2 de mayo ya lo pedí", // a date's "de" after it does not
	}
	want := make([]Result, len(msgs))
	for i, m := range msgs {
		want[i] = d.Classify(m)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(msgs)
				if got := d.Classify(msgs[k]); got.Intent != want[k].Intent || got.Clause != want[k].Clause {
					t.Errorf("Classify(%q) = %+v, want %+v", msgs[k], got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

// floorScorer scores a text holding a comma (Latin or Arabic) as a whole
// reply that leans against an opt-out (0.01), and a comma-free text holding
// "STOPME" as a confident one (0.99): the shape of "Stop, the bill is
// wrong", where the clause alone reads as a request and the reply does not.
type floorScorer struct{}

func (floorScorer) Scores(text string) Scores {
	switch {
	case strings.ContainsAny(text, ",،"):
		return Scores{OptOut: 0.01}
	case strings.Contains(text, "STOPME"):
		return Scores{OptOut: 0.99}
	}
	return Scores{}
}

// TestFirstClauseFloorConcurrent: under the floor a reply's first clause
// does not decide, a later one still does, and without the floor the first
// one decides again; Arabic, Hindi, emoji and combining marks, from many
// goroutines at once (under -race in CI).
func TestFirstClauseFloorConcurrent(t *testing.T) {
	floor := New(DefaultLists()).WithModel(Model{Scorer: floorScorer{}})
	none := New(DefaultLists()).WithModel(Model{Scorer: floorScorer{}, FirstClauseFloor: 1e-9})
	cases := []struct {
		msg              string
		floor, withoutIt Intent
	}{
		{"STOPME، الفاتورة غلط، ٤٥ مو ٥٤", None, OptOut},
		{"STOPME 🙏, बिल में ४५ नहीं ५४ लिखा है", None, OptOut},
		{"STOPME, la factura dice 54, e\u0301ran 45", None, OptOut},
		{"شكرا على التوصيل، STOPME يا جماعة", OptOut, OptOut},
		{"धन्यवाद 🙏, STOPME करो", OptOut, OptOut},
		{"ok 👍, see you tomorrow", None, None},
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				c := cases[(g+i)%len(cases)]
				if got := floor.Classify(c.msg).Intent; got != c.floor {
					t.Errorf("Classify(%q) = %s, want %s under the floor", c.msg, got, c.floor)
					return
				}
				if got := none.Classify(c.msg).Intent; got != c.withoutIt {
					t.Errorf("Classify(%q) without the floor = %s, want %s", c.msg, got, c.withoutIt)
					return
				}
			}
		})
	}
	wg.Wait()
}
