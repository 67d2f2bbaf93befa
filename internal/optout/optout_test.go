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
