package optout

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLabelledCorpus(t *testing.T) {
	f, err := os.Open("testdata/labelled.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := New(DefaultLists())
	perLang := map[string]int{}
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("bad line %q", line)
		}
		lang, want, text := parts[0], Intent(parts[1]), parts[2]
		perLang[lang]++
		total++
		if got := d.Classify(text); got.Intent != want {
			t.Errorf("[%s] %q = %s (matched %q), want %s", lang, text, got.Intent, got.Matched, want)
		}
	}
	t.Logf("%d labelled messages: %v", total, perLang)
	if total < 150 || len(perLang) < 7 {
		t.Errorf("corpus has %d messages in %d languages; want at least 150 in 7", total, len(perLang))
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"  STOP!!! ":        "stop",
		"ＳＴＯＰ":              "stop",
		"st\u200bop":        "stop",
		"\u200fإيقاف\u200f": "ايقاف",
		"تــوقــف":          "توقف",
		"إِيقَاف":           "ايقاف",
		"آأإٱ":              "اااا",
		"مستشفى مدرسة":      "مستشفي مدرسه",
		"رقم ١٢٣ و ۴۵۶":     "رقم 123 و 456",
		"توقف، شكرا؟":       "توقف شكرا",
		"Don't  stop":       "dont stop",
		"stop 🛑 now":        "stop now",
		"Straße":            "strasse",
		"\xff\xfestop":      "stop",
		"'quoted'":          "quoted",
		"ﻻ":                 "لا",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMerge(t *testing.T) {
	base := New(DefaultLists())
	if r := base.Classify("HALT"); r.Intent != None {
		t.Fatalf("HALT before merge = %v", r)
	}
	d := New(DefaultLists().Merge(Lists{OptOut: []string{"HALT"}, OptOutPhrases: []string{"leave me alone"}}))
	if r := d.Classify("halt!"); r.Intent != OptOut || r.Matched != "halt" {
		t.Errorf("HALT after merge = %v", r)
	}
	if r := d.Classify("please just leave me alone"); r.Intent != OptOut {
		t.Errorf("extra phrase = %v", r)
	}
	if r := d.Classify("STOP"); r.Intent != OptOut {
		t.Error("merge lost the built-in keywords")
	}
}

// A word of time_suffixes is a clock time written onto a number on either
// side of a phrase, and standing beside the number only before it; a word
// of times, beside it on either side. Both come from the lists, so a
// platform team adds its own through optout.extra.
func TestTimeSuffixesAreData(t *testing.T) {
	d := New(DefaultLists().Merge(Lists{OptOutPhrases: []string{"leave me alone"}, Times: []string{"lezz"}, TimeSuffixes: []string{"zu"}}))
	for msg, want := range map[string]Intent{
		"leave me alone":           OptOut,
		"leave me alone 7zu":       None,   // onto the number, after
		"leave me alone, 7 zu":     OptOut, // beside it, after: not a time
		"7 zu leave me alone":      None,   // beside it, before
		"leave me alone 7 lezz":    None,   // a time word beside it, after
		"leave me alone 7lezz":     None,
		"leave me alone 7 de mayo": OptOut, // the built-in suffixes keep their rule
		"leave me alone saat 7'de": None,
		"leave me alone, 700zu":    OptOut, // three digits are no clock time
	} {
		if got := d.Classify(msg); got.Intent != want {
			t.Errorf("Classify(%q) = %s (%q), want %s", msg, got.Intent, got.Matched, want)
		}
	}
}

func TestLongMessagesIgnorePhrases(t *testing.T) {
	d := New(DefaultLists())
	long := "I told my colleague that the system should stop sending duplicate invoices to the finance team every single morning"
	if r := d.Classify(long); r.Intent != None {
		t.Errorf("long message = %v", r)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"STOP", "إيقاف", "ＳＴＯＰ", "don't", "\xff", "ـــ", "a\u200bb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		if !utf8.ValidString(n) {
			t.Fatalf("Normalize(%q) = invalid UTF-8 %q", s, n)
		}
		if again := Normalize(n); again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, again)
		}
	})
}

func FuzzClassify(f *testing.F) {
	d := New(DefaultLists())
	for _, s := range []string{"STOP", "stop please please", "Can you cancel my order?", "لا ترسل لي", "don't stop sending"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		switch r := d.Classify(s); r.Intent {
		case OptOut, OptIn:
			if r.Matched == "" {
				t.Fatalf("Classify(%q) = %v without a match", s, r)
			}
		case None:
		default:
			t.Fatalf("Classify(%q) = %v", s, r)
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	d := New(DefaultLists())
	msgs := []string{"STOP", "Please stop sending me messages", "Can you cancel my order?", "إيقاف", "Thanks, see you tomorrow at the store"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.Classify(msgs[i%len(msgs)])
	}
}

// Long messages are classified in linear time: before, a keyword search
// over every span took minutes on a 4,000-word message. A regression makes
// this test time out rather than fail on a clock.
func TestLongMessages(t *testing.T) {
	d := New(DefaultLists())
	for _, tc := range []struct {
		text string
		want Intent
	}{
		{strings.Repeat("please ", 20000) + "stop", OptOut},
		{"stop " + strings.Repeat("thank you ", 10000), OptOut},
		{strings.Repeat("stop ", 20000), OptOut},
		{strings.Repeat("word ", 20000), None},
		{strings.Repeat("please ", 10000) + "hello " + strings.Repeat("please ", 10000) + "stop", None},
		{strings.Repeat("stop sending ", 5000), None}, // longer than MaxPhraseWords
	} {
		if got := d.Classify(tc.text).Intent; got != tc.want {
			t.Errorf("Classify(%.30q… %d bytes) = %s, want %s", tc.text, len(tc.text), got, tc.want)
		}
	}
}

func BenchmarkClassifyLong(b *testing.B) {
	d := New(DefaultLists())
	text := strings.Repeat("please ", 2000) + "hello"
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		d.Classify(text)
	}
}

func BenchmarkNormalize(b *testing.B) {
	msgs := []string{"Your order #2041 has been shipped.", "طلبكَ رقم ١٠٤٢ تمّ شحنه", "İPTAL ÇIK", "आपका ऑर्डर भेज दिया गया है", "café e\u0301 👍🏽"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Normalize(msgs[i%len(msgs)])
	}
}

// fixedScorer answers the same scores for every message.
type fixedScorer Scores

func (f fixedScorer) Scores(string) Scores { return Scores(f) }

func TestModelDecidesOnlyWhenTheListsAreSilent(t *testing.T) {
	base := New(DefaultLists())
	tests := []struct {
		name   string
		text   string
		scores Scores
		m      Model
		want   Intent
	}{
		{"keyword beats a model that says opt in", "STOP", Scores{OptIn: 1}, Model{}, OptOut},
		{"opt-in keyword beats a model that says opt out", "START", Scores{OptOut: 1}, Model{}, OptIn},
		{"paraphrase at the default opt-out threshold", "I would rather not get these anymore", Scores{OptOut: DefaultOptOutThreshold}, Model{}, OptOut},
		{"below the opt-out threshold", "I would rather not get these anymore", Scores{OptOut: DefaultOptOutThreshold - 0.01}, Model{}, None},
		{"confident opt-in", "add me back please", Scores{OptIn: DefaultOptInThreshold}, Model{}, OptIn},
		{"hesitant opt-in is none", "add me back please", Scores{OptIn: DefaultOptInThreshold - 0.01}, Model{}, None},
		{"opt-out wins over opt-in", "hmm", Scores{OptOut: 0.9, OptIn: 0.95}, Model{}, OptOut},
		{"configured threshold", "I would rather not get these anymore", Scores{OptOut: 0.6}, Model{OptOutThreshold: 0.7}, None},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Scorer = fixedScorer(tc.scores)
			r := base.WithModel(tc.m).Classify(tc.text)
			if r.Intent != tc.want {
				t.Errorf("Classify(%q) with scores %+v = %v, want %v", tc.text, tc.scores, r.Intent, tc.want)
			}
			if (r.Matched == "") != (r.Model != nil) {
				t.Errorf("Classify(%q) = %+v: the model is asked exactly when no list entry matched", tc.text, r)
			}
		})
	}
	if r := base.Classify("I would rather not get these anymore"); r.Intent != None || r.Model != nil {
		t.Errorf("Classify without a model = %+v, want none and no scores", r)
	}
	if r := base.WithModel(Model{Scorer: fixedScorer{OptOut: 1}}).Classify("  "); r.Intent != None {
		t.Errorf("Classify(blank) = %+v, want none", r)
	}
}
