package optout

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// oddTexts are inputs at the edges of the normaliser: scripts with and
// without case, marks, format characters, apostrophes, invalid UTF-8.
var oddTexts = []string{
	"", " ", "\x00", "\xff", "a\xffb", "\xe2\x80", "STOP", "ＳＴＯＰ", "don't", "don’t", "donʼt", "a''b", "'a'", "a'", "'",
	"لو سمحت وقفوا الرسايل ما ابغى اشتراك", "إيقاف", "أوقف الرسائل ـــ من فضلك", "مَرْحَبًا", "١٢٣ ۴۵۶", "ا\u0654", "ى ة ؤ ئ",
	"आपका ऑर्डर 4412 भेज दिया गया है। अगली खरीद पर 20% छूट", "ज़रूर", "ज\u093Cरूर", "न\u093C", "क्षत्रिय", "ন্যায়", "வணக்கம்", "മലയാളം", "ো", "ে\u09BE",
	"İSTANBUL'DA İndirim ÇIK ıi", "Iı İi", "Straße GROSS ß ẞ", "ﬁnance ﬀ", "Ⅻ ① ㎏", "ǅ ǈ ǋ",
	"Ｔｅｓｔ", "ПРЕКРАТИТЕ рассылку, пожалуйста", "ΣΊΣΥΦΟΣ ς", "ѕаvе скидкa", "promoción ñandú", "s̈ȁl̃ë", "e\u0301\u0301", "a\u0316\u0301\u0300",
	"emoji 😀👍🏽 👨‍👩‍👧 🇦🇪", "a\u200db", "a\u200cb\u200b", "\ufeffBOM", "\u202eRTL\u202c", "x\u0307y", "İ\u0307",
	"가각 \u1100\u1161\u11a8", "日本語テキスト ｶﾀｶﾅ ｶﾞ", "\ufffd", "a\ufffdb", "Ⓢⓣⓞⓟ", "𝐒𝐓𝐎𝐏", "ｓｔｏｐ！",
	strings.Repeat("وقف الرسائل ", 400), strings.Repeat("é", 5000),
}

func checkFast(t *testing.T, s string) bool {
	t.Helper()
	got, ok := appendFast([]byte("pre"), s)
	if !strings.HasPrefix(string(got), "pre") {
		t.Errorf("appendFast(%q) = %q: lost dst", s, got)
	}
	if !ok {
		if string(got) != "pre" {
			t.Errorf("appendFast(%q) = %q, false: want dst unchanged", s, got)
		}
		return false
	}
	if want := normalize(s); string(got[3:]) != want {
		t.Errorf("appendFast(%q) = %q, want %q (normalize)", s, got[3:], want)
	}
	return true
}

// sweepRunes calls check with each context, its %s replaced by a rune, for
// every rune of the Basic Multilingual Plane and of the mathematical and
// emoji planes (every seventh under the race detector), surrogates left out.
func sweepRunes(contexts []string, check func(string)) {
	step := rune(1)
	if raceEnabled {
		step = 7
	}
	for r := rune(0); r < 0x20000; r += step {
		if r >= 0x10000 && r < 0x1D400 || r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		for _, c := range contexts {
			check(strings.ReplaceAll(c, "%s", string(r)))
		}
	}
}

// mostTakeFastPath checks every text and wants at least 90 % of them to
// take the fast path (check returning true): what says that the fast path
// still covers the corpus's scripts.
func mostTakeFastPath(t *testing.T, what string, texts []string, check func(string) bool) {
	t.Helper()
	fast := 0
	for _, s := range texts {
		if check(s) {
			fast++
		}
	}
	n := len(texts)
	t.Logf("corpus: %d of %d %s", fast, n, what)
	if fast < n*9/10 {
		t.Errorf("corpus: %d of %d %s, want at least 90%%", fast, n, what)
	}
}

// appendFast, where it takes the text, gives normalize's result: for every
// rune of the Basic Multilingual Plane and of the emoji and mathematical
// planes alone and between letters, apostrophes and marks, for odd texts,
// and for every message of the detection corpus.
func TestAppendFast(t *testing.T) {
	contexts := []string{"%s", "a%sb", "A'%s", "%s'x", "a%s'b", "a'%sb", "x%s\u0301", "\u0915%s\u094D", "ا%s\u0654", "%s\u200d%s"}
	sweepRunes(contexts, func(s string) { checkFast(t, s) })
	for _, s := range oddTexts {
		checkFast(t, s)
	}
	mostTakeFastPath(t, "non-ASCII messages take the fast path", corpusTexts(t), func(s string) bool { return checkFast(t, s) })
}

// The scripts of the detection corpus take the fast path: if they did
// not, Normalize would stay correct but slow, and nothing else would say.
func TestAppendFastTakes(t *testing.T) {
	for _, s := range []string{"لو سمحت وقفوا الرسايل ما ابغى اشتراك", "आपका ऑर्डर 4412 भेज दिया गया है। अगली खरीद पर 20% छूट",
		"ПРЕКРАТИТЕ рассылку, пожалуйста", "Promoción válida hasta el DOMINGO", "Bitte keine Nachrichten mehr schicken, danke 😀",
		"আমাকে আর মেসেজ পাঠাবেন না", "இனி செய்தி அனுப்ப வேண்டாம்", "دیگر پیام نفرستید", "Mesaj göndermeyi DURDURUN lütfen"} {
		if _, ok := appendFast(nil, s); !ok {
			t.Errorf("appendFast(%q) declined, want the fast path", s)
		}
	}
}

// corpusTexts is the text column of the detection corpus's non-ASCII lines
// (internal/model/testdata, read as plain lines: escapes do not matter
// here).
func corpusTexts(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join("..", "model", "testdata", "*", "*.tsv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files (%v)", err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			p := strings.SplitN(strings.TrimRight(line, "\r\n"), "\t", 3)
			if len(p) == 3 && !isASCII(p[2]) {
				out = append(out, p[2])
			}
		}
	}
	return out
}

// Normalize, AppendNormalized and Lookalikes from 8 goroutines at once,
// the memo pages filled concurrently, give what one goroutine gets, and
// what the general paths give.
func TestNormalizeConcurrent(t *testing.T) {
	reset := func() { // start from empty pages: the first uses race
		for i := range runePages {
			runePages[i].Store(nil)
			lookPages[i].Store(nil)
		}
	}
	texts := append(oddTexts[:len(oddTexts):len(oddTexts)], "𠀀 󠁁", "ѕаvе скидкa", "promoción ñandú")
	all := corpusTexts(t)
	for i := 0; i < len(all); i += 97 {
		texts = append(texts, all[i])
	}
	want, look := make([]string, len(texts)), make([]string, len(texts))
	for i, s := range texts {
		want[i] = normalize(s)
		look[i] = lookalikesGeneral(want[i])
	}
	reset()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var buf []byte
			for k := range len(texts) {
				i := (k + g*17) % len(texts)
				if got := Normalize(texts[i]); got != want[i] {
					t.Errorf("Normalize(%q) = %q, want %q", texts[i], got, want[i])
				}
				buf = AppendNormalized(buf[:0], texts[i])
				if string(buf) != want[i] {
					t.Errorf("AppendNormalized(%q) = %q, want %q", texts[i], buf, want[i])
				}
				if got := Lookalikes(want[i]); got != look[i] {
					t.Errorf("Lookalikes(%q) = %q, want %q", want[i], got, look[i])
				}
			}
		})
	}
	wg.Wait()
}

func FuzzAppendFast(f *testing.F) {
	for _, s := range oddTexts {
		if len(s) < 200 {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := appendFast(nil, s)
		if ok && string(got) != normalize(s) {
			t.Fatalf("appendFast(%q) = %q, want %q", s, got, normalize(s))
		}
		if ok && !utf8.Valid(got) {
			t.Fatalf("appendFast(%q) = invalid UTF-8", s)
		}
	})
}

func checkLook(t *testing.T, s string) bool {
	t.Helper()
	n := Normalize(s)
	got, ok := lookalikesFast(n)
	if ok && got != lookalikesGeneral(n) {
		t.Errorf("lookalikesFast(%q) = %q, want %q (the general path)", n, got, lookalikesGeneral(n))
	}
	return ok
}

// lookalikesFast, where it takes the text, gives the general path's
// result: for every rune of the Basic Multilingual Plane and the
// mathematical and emoji planes alone and beside Latin, Cyrillic and
// Greek letters and marks, for odd texts and the corpus.
func TestLookalikesFast(t *testing.T) {
	contexts := []string{"%s", "a%sb", "с%sк", "α%s", "e\u0301%s", "%s\u0301", "%s\u0306", "и%s", "%s й", "x%s\u0308y", "ѕа%sе"}
	sweepRunes(contexts, func(s string) { checkLook(t, s) })
	for _, s := range append(oddTexts, "gеt 50 оff", "скидкa", "ǵét́", "ѕаӏе", "αβγ abc", "й", "ёлка", "Ñandú promoción", "ΆΈΉ ά", "ǅ ǆ", "ṩ ḝ") {
		checkLook(t, s)
	}
	var texts []string
	for _, s := range corpusTexts(t) {
		if foldable(Normalize(s)) {
			texts = append(texts, s)
		}
	}
	mostTakeFastPath(t, "messages Lookalikes may change take its fast path", texts, func(s string) bool { return checkLook(t, s) })
}

func FuzzLookalikesFast(f *testing.F) {
	for _, s := range []string{"gеt 50 оff", "скидкa", "ǵét́", "sale", "ѕаӏе", "αβγ abc", "й", "e\u0301\u0301", "promoción"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, n := range []string{s, Normalize(s)} {
			if got, ok := lookalikesFast(n); ok && got != lookalikesGeneral(n) {
				t.Fatalf("lookalikesFast(%q) = %q, want %q", n, got, lookalikesGeneral(n))
			}
		}
	})
}
