package model

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// scopeSpec is the shipped inbound spec: the negator scope on (format 6).
func scopeSpec() Spec { return TaskSpec(Inbound) }

// A word within two words of a negator is read only as negated: its word,
// length-crossed word and character n-grams are not the plain ones (its
// n-grams are char_neg features, its word a neg_word), and
// its concept classes appear only near the negator. The same words
// without the negator keep their plain features, and a text without a
// negator has the features of the spec without the scope.
func TestNegScopeFeatures(t *testing.T) {
	s := scopeSpec()
	off := s
	off.NegScope = false
	for _, tc := range []struct {
		text, word string // word: normalised, within the scope, of 4 runes or more
	}{
		{"Bitte nicht löschen", "loschen"},
		{"please don't remove my number", "remove"},
		{"मेरा नंबर मत हटाइए", "हटाइए"},
		{"amar number baad diben na", "diben"},
		{"لا تحذفوا رقمي", "تحذفوا"},
		{"не удалять мой номер 🙏", "удалять"},
		{"jangan hapus nomor saya", "hapus"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			f := features(s, tc.text)
			if _, ok := f[kindWord][tc.word]; ok {
				t.Errorf("%q: word feature %q inside the scope", tc.text, tc.word)
			}
			if _, ok := f[kindNeg][tc.word]; !ok {
				t.Errorf("%q: no neg_word feature %q", tc.text, tc.word)
			}
			if _, ok := f[kindLenWord][tc.word]; ok {
				t.Errorf("%q: length-crossed word %q inside the scope", tc.text, tc.word)
			}
			plain := features(off, tc.text)
			gram := string([]rune(tc.word)[:4])
			if _, ok := f[kindChar][gram]; ok {
				t.Errorf("%q: plain character n-gram %q inside the scope", tc.text, gram)
			}
			if a, b := f[kindCharNeg][gram], plain[kindChar][gram]; a == 0 || b == 0 || a == b {
				t.Errorf("%q: the char_neg n-gram %q is bucket %d, the plain one %d: want two", tc.text, gram, a, b)
			}
		})
	}
	for _, text := range []string{"Bitte löschen", "please remove my number", "stop", "", "S T O P", "🙏 شكرا"} {
		if a, b := features(s, text), features(off, text); !maps.EqualFunc(a, b, maps.Equal) {
			t.Errorf("%q has no negator, but its features differ with the scope", text)
		}
	}
	// A concept class inside the scope is only near the negator.
	if c := conceptFeatures(t, s, "please don't stop the messages"); slices.Contains(c, "concept:ENDV") || !slices.Contains(c, "concept_neg:ENDV") {
		t.Errorf("concepts of a negated stop = %v: want ENDV near the negator only", c)
	}
	if c := conceptFeatures(t, s, "please stop the messages"); !slices.Contains(c, "concept:ENDV") {
		t.Errorf("concepts of a stop = %v: want ENDV", c)
	}
}

// The scope covers at most maxScope words among the first maxScopeWords,
// the same in the reference and the fast path.
func TestNegScopeBounds(t *testing.T) {
	s := scopeSpec()
	mk := mustMarks(s)
	var sc scope
	long := s.prepare(nil, strings.Repeat("not stop it ", 100))
	if got := s.scopeOf(&sc, long, mk); got == nil || got.n != maxScope {
		t.Fatalf("scope of 300 words with 100 negators: %v, want %d words", got, maxScope)
	}
	late := s.prepare(nil, strings.Repeat("word ", maxScopeWords)+"not stop")
	if got := s.scopeOf(&sc, late, mk); got != nil {
		t.Errorf("a negator after word %d has a scope: %+v", maxScopeWords, got.r[:got.n])
	}
	if got := s.scopeOf(&sc, s.prepare(nil, "no"), mk); got != nil && got.n != 0 {
		t.Errorf("a lone negator has a scope of %d words", got.n)
	}
}

// A model with the negator scope is format 6, trains to the same bytes
// twice and reads back; labelled format 5, or with the scope and no
// negators, it is refused.
func TestNegScopeFile(t *testing.T) {
	a, m := trainFileTwice(t, scopeSpec(), 3, 6)
	if !m.Spec.NegScope || m.Spec != scopeSpec() {
		t.Errorf("the loaded model's spec is not the inbound spec")
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"format 5 with the scope", withVersion(t, a, 5, nil)},
		{"the scope without negators", withVersion(t, a, 6, func(h map[string]any) {
			sp := h["spec"].(map[string]any)
			for _, k := range []string{"negators", "neg_window", "neg_bigrams", "concept_neg"} {
				delete(sp, k)
			}
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.b); !errors.Is(err, ErrFormat) {
				t.Errorf("Load(%s) = %v, want ErrFormat", tc.name, err)
			}
		})
	}
	if _, err := Load(withVersion(t, a, 6, nil)); err != nil {
		t.Errorf("Load(re-sealed format 6) = %v; the test's rewriting is wrong", err)
	}
	if v := binary.LittleEndian.Uint32(a[len(magic):]); v != FormatVersion {
		t.Errorf("the inbound spec is format %d, the newest is %d", v, FormatVersion)
	}
}

// negScopeTexts are negations in the corpus's scripts, and the edges of
// the scope: a negator at either end, one after another, more scoped
// words than the scope holds, one past the words it reads.
var negScopeTexts = []string{
	"please don't remove my number, I still need the reminders", "Bitte nicht löschen, ich will die Termine hier",
	"Não me tirem da lista 🙏", "мой номер не удаляйте, пожалуйста", "لا تحذفوا رقمي من القائمة، أحتاج التذكيرات",
	"mera number mat hatao bhai", "मैसेज मत बंद करना", "amar number list theke baad diben na", "jangan hapus nomor ini ya",
	"wag nyo pong alisin number ko", "پیام‌ها رو قطع نکنین", "no", "not", "stop not", "not not not stop",
	"ne\u0301 pas arre\u0302ter", "नहीं नहीं 😀👍🏽 बंद", strings.Repeat("не прекращайте ", 40), strings.Repeat("x ", 300) + "not stop",
	strings.Repeat("لا توقف ", 200),
}

// Predict, the fast path, equals the reference with the scope, from
// many goroutines, and allocates nothing beyond the normaliser.
func TestNegScopePredict(t *testing.T) {
	_, m, err := Train(Inbound, fixture(t, Inbound), scopeSpec(), Params{Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	texts := append(slices.Clone(multilingual), negScopeTexts...)
	for _, e := range fixture(t, Inbound) {
		texts = append(texts, e.Text)
	}
	matchesReference(t, m, texts, 8)
	noAllocsBeyondNormalize(t, m, negScopeTexts[0]+", "+negScopeTexts[4])
}

// Explain names the character n-grams in a negator's scope char_neg, and
// the shipped inbound model has the scope.
func TestNegScopeExplain(t *testing.T) {
	m, err := Embedded(Inbound)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Spec.NegScope {
		t.Fatal("the embedded inbound model has no negator scope")
	}
	const text = "Bitte nicht löschen, ich will die Termine weiterhin hier bekommen"
	kinds := map[string]bool{}
	for c := range m.Classes {
		for _, e := range m.Explain(text, c, 1000) {
			kinds[e.Kind] = true
		}
	}
	if !kinds["char_neg"] || !kinds["char"] {
		t.Errorf("Explain(%q) has the kinds %v: want char_neg and char", text, slices.Sorted(maps.Keys(kinds)))
	}
}
