package model

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// negCharsSpec is the shipped inbound spec: the negated character
// n-grams on (format 6).
func negCharsSpec() Spec { return TaskSpec(Inbound) }

// A word within two words of a negator keeps every feature it has without
// the negated n-grams, and its character n-grams are there again as
// char_neg features, in buckets of their own. A text without a negator has
// exactly the features of the spec without them.
func TestNegCharsFeatures(t *testing.T) {
	s := negCharsSpec()
	off := s
	off.NegChars = false
	for _, tc := range []struct {
		text, word string // word: normalised, near the negator, of 4 runes or more
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
			f, plain := features(s, tc.text), features(off, tc.text)
			for k, m := range plain {
				if !maps.Equal(f[k], m) {
					t.Errorf("%q: the %s features differ from the spec without char_neg: %v, %v", tc.text, kindNames[k], f[k], m)
				}
			}
			gram := string([]rune(tc.word)[:4])
			if a, b := f[kindCharNeg][gram], f[kindChar][gram]; a == 0 || b == 0 || a == b {
				t.Errorf("%q: the char_neg n-gram %q is bucket %d, the plain one %d: want two", tc.text, gram, a, b)
			}
		})
	}
	for _, text := range []string{"Bitte löschen", "please remove my number", "stop", "", "S T O P", "🙏 شكرا"} {
		if a, b := features(s, text), features(off, text); !maps.EqualFunc(a, b, maps.Equal) {
			t.Errorf("%q has no negator, but its features differ with char_neg", text)
		}
	}
}

// The scope covers at most maxScope words among the first maxScopeWords,
// the same in the reference and the fast path.
func TestNegCharsBounds(t *testing.T) {
	s := negCharsSpec()
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

// A model with the negated n-grams is format 6, trains to the same bytes
// twice and reads back; labelled format 5, or with them and no negators,
// it is refused.
func TestNegCharsFile(t *testing.T) {
	a, m := trainFileTwice(t, negCharsSpec(), 3, 6)
	if !m.Spec.NegChars || m.Spec != negCharsSpec() {
		t.Errorf("the loaded model's spec is not the inbound spec")
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"format 5 with neg_chars", withVersion(t, a, 5, nil)},
		{"neg_chars without negators", withVersion(t, a, 6, func(h map[string]any) {
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

// negCharsTexts are negations in the corpus's scripts, and the edges of
// the scope: a negator at either end, one after another, more scoped
// words than the scope holds, one past the words it reads.
var negCharsTexts = []string{
	"please don't remove my number, I still need the reminders", "Bitte nicht löschen, ich will die Termine hier",
	"Não me tirem da lista 🙏", "мой номер не удаляйте, пожалуйста", "لا تحذفوا رقمي من القائمة، أحتاج التذكيرات",
	"mera number mat hatao bhai", "मैसेज मत बंद करना", "amar number list theke baad diben na", "jangan hapus nomor ini ya",
	"wag nyo pong alisin number ko", "پیام‌ها رو قطع نکنین", "no", "not", "stop not", "not not not stop",
	"ne\u0301 pas arre\u0302ter", "नहीं नहीं 😀👍🏽 बंद", strings.Repeat("не прекращайте ", 40), strings.Repeat("x ", 300) + "not stop",
	strings.Repeat("لا توقف ", 200),
}

// Predict, the fast path, equals the reference with the negated n-grams, from
// many goroutines, and allocates nothing beyond the normaliser.
func TestNegCharsPredict(t *testing.T) {
	_, m, err := Train(Inbound, fixture(t, Inbound), negCharsSpec(), Params{Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	texts := append(slices.Clone(multilingual), negCharsTexts...)
	for _, e := range fixture(t, Inbound) {
		texts = append(texts, e.Text)
	}
	matchesReference(t, m, texts, 8)
	noAllocsBeyondNormalize(t, m, negCharsTexts[0]+", "+negCharsTexts[4])
}

// Explain names the negated character n-grams char_neg, and the shipped
// inbound model has them.
func TestNegCharsExplain(t *testing.T) {
	m, err := Embedded(Inbound)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Spec.NegChars {
		t.Fatal("the embedded inbound model has no negated character n-grams")
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
