package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/optout"
)

// negSpec is the inbound spec with the negator marks of negators.txt and
// without the negator bigrams and the concepts (format 3).
func negSpec() Spec {
	s := nbSpec()
	s.Negators, s.NegWindow, s.NegBigrams = Negators(), 2, false
	return s
}

// nbSpec is the inbound spec without the concepts and the negated
// character n-grams (format 4).
func nbSpec() Spec {
	s := TaskSpec(Inbound)
	s.Concepts, s.ConceptNeg, s.ConceptPairs, s.NegChars = "", false, 0, false
	return s
}

// A word within two words of a negator is marked, in any script the list
// has; the negator itself and a word further away are not, and without a
// negator nothing is.
func TestNegatorMarks(t *testing.T) {
	s := negSpec()
	for _, tc := range []struct {
		text   string
		marked []string
	}{
		{"don't stop the reminders", []string{"stop", "the"}},
		{"stop the reminders", nil},
		{"не прекращайте напоминания", []string{"прекращайте", "напоминания"}},
		{"ye message band mat karna", []string{"message", "band", "karna"}},
		{"jangan berhenti ngabarin ya pak", []string{"berhenti", "ngabarin"}},
		{"মেসেজ বন্ধ কইরেন না", []string{"বন্ধ", "কইরেন"}},
		{"no", nil},
		{"please stop sending these, I will not read one more", []string{"will", "read", "one", "i"}},
		{"🙏 لا توقفوا الرسائل 🙏", []string{"توقفوا", "الرسايل"}}, // the normaliser folds ئ to ي,
	} {
		t.Run(tc.text, func(t *testing.T) {
			var got []string
			for w := range features(s, tc.text)[kindNeg] {
				got = append(got, w)
			}
			slices.Sort(got)
			want := slices.Clone(tc.marked)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("neg_word features of %q = %v, want %v", tc.text, got, want)
			}
		})
	}
	if s2 := TaskSpec(Outbound); len(features(s2, "don't stop")[kindNeg]) != 0 {
		t.Errorf("a spec without negators marks words")
	}
}

// The negator list is data: normalised, sorted, without repeats, and it
// holds a negator of each language the keep-requests use.
func TestNegators(t *testing.T) {
	n := strings.Fields(Negators())
	if !slices.IsSorted(n) || len(slices.Compact(slices.Clone(n))) != len(n) {
		t.Errorf("Negators() = %v: want sorted without repeats", n)
	}
	for _, w := range []string{"dont", "не", "mat", "jangan", "না", "huwag", "nicht", "nao"} {
		if !slices.Contains(n, w) {
			t.Errorf("Negators() lacks %q", w)
		}
	}
}

// trainFileTwice trains the inbound fixture with spec twice, fails the
// test unless both give the same bytes in format version, and returns the
// file and its model.
func trainFileTwice(t *testing.T, spec Spec, epochs int, version uint32) ([]byte, *Model) {
	t.Helper()
	ex := fixture(t, Inbound)
	a, m, err := Train(Inbound, ex, spec, Params{Epochs: epochs})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Train(Inbound, ex, spec, Params{Epochs: epochs})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("Train of a format-%d spec twice gave different bytes", version)
	}
	if v := binary.LittleEndian.Uint32(a[len(magic):]); v != version {
		t.Errorf("Train wrote format %d, want %d", v, version)
	}
	return a, m
}

// A model with negators is format 3, trains to the same bytes twice, and
// reads back; labelled format 2 it is refused.
func TestNegatorFile(t *testing.T) {
	a, m := trainFileTwice(t, negSpec(), 5, 3)
	if len(m.mk.neg) == 0 {
		t.Errorf("the loaded model has no negator hashes")
	}
	if _, err := Load(withVersion(t, a, 2, nil)); !errors.Is(err, ErrFormat) {
		t.Errorf("Load(format 2 with negators) = %v, want ErrFormat", err)
	}
	if _, err := Load(withVersion(t, a, 3, func(h map[string]any) { h["spec"].(map[string]any)["neg_window"] = 0 })); !errors.Is(err, ErrFormat) {
		t.Errorf("Load(negators without a window) = %v, want ErrFormat", err)
	}
}

// The inbound spec's negator bigrams make a format-4 file that trains to
// the same bytes twice and reads back; labelled format 3 it is refused, as
// is neg_bigrams without negators or beside every bigram.
func TestNegBigramsFile(t *testing.T) {
	a, m := trainFileTwice(t, nbSpec(), 3, 4)
	if !m.Spec.NegBigrams || m.Spec != nbSpec() {
		t.Errorf("the loaded spec = %+v, want %+v", m.Spec, nbSpec())
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"format 3 with neg_bigrams", withVersion(t, a, 3, nil)},
		{"neg_bigrams without negators", withVersion(t, a, 4, func(h map[string]any) {
			sp := h["spec"].(map[string]any)
			delete(sp, "negators")
			delete(sp, "neg_window")
		})},
		{"neg_bigrams with every bigram", withVersion(t, a, 4, func(h map[string]any) { h["spec"].(map[string]any)["words"] = 2 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.b); !errors.Is(err, ErrFormat) {
				t.Errorf("Load(%s) = %v, want ErrFormat", tc.name, err)
			}
		})
	}
	if _, err := Load(withVersion(t, a, 4, nil)); err != nil {
		t.Errorf("Load(re-sealed format 4) = %v; the test's rewriting is wrong", err)
	}
}

// CharWeight counts a character n-gram at that value in both Train and
// Predict: a model trained with 0.5 fits its training examples, and the
// same weights read with char_weight 1 predict otherwise and explain its
// character n-grams at twice the weight.
func TestCharWeight(t *testing.T) {
	s := TaskSpec(Inbound)
	s.CharWeight = 0.5
	ex := fixture(t, Inbound)
	b, m, err := Train(Inbound, ex, s, Params{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range Select(ex, TrainSplit) {
		if got := m.Classes[m.Argmax(e.Text)]; got != e.Label {
			t.Errorf("Argmax(%q) = %s, want %s (a training example)", e.Text, got, e.Label)
		}
	}
	full, err := Load(withVersion(t, b, FormatVersion, func(h map[string]any) { h["spec"].(map[string]any)["char_weight"] = 1 }))
	if err != nil {
		t.Fatal(err)
	}
	const text = "please stop texting me"
	if a, b := m.Predict(text, nil), full.Predict(text, nil); slices.Equal(a, b) {
		t.Errorf("Predict(%q) = %v with char_weight 0.5 and with 1: the weight is not used", text, a)
	}
	half := map[string]float64{}
	for _, c := range m.Explain(text, m.Class("opt_out"), 100) {
		half[c.Kind+" "+c.Feature] = c.Weight
	}
	n := 0
	for _, c := range full.Explain(text, full.Class("opt_out"), 100) {
		if h, ok := half[c.Kind+" "+c.Feature]; ok {
			want := c.Weight
			if c.Kind == "char" {
				want /= 2
			}
			if math.Abs(h-want) > 1e-9 {
				t.Errorf("Explain(%q) %s %q = %v with char_weight 0.5, %v with 1", text, c.Kind, c.Feature, h, c.Weight)
			}
			n++
		}
	}
	if n == 0 {
		t.Errorf("Explain(%q) shared no feature between the two weights", text)
	}
	if _, err := Load(withVersion(t, b, 2, nil)); !errors.Is(err, ErrFormat) {
		t.Errorf("Load(format 2 with char_weight) = %v, want ErrFormat", err)
	}
}

// Predict with the negator marks and a character weight is safe from many
// goroutines on multilingual replies (Arabic, Hindi, Turkish, emoji,
// combining marks, and negated requests): each gets what one goroutine
// alone gets, and PredictNormalized agrees with Predict bit for bit.
func TestNegatorPredictConcurrent(t *testing.T) {
	s := negSpec()
	s.CharWeight = 0.5
	_, m, err := Train(Inbound, fixture(t, Inbound), s, Params{Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	texts := append(slices.Clone(multilingual), "не прекращайте напоминания 🙏", "ye message band mat karna", "لا توقفوا الرسائل 😅", "मैसेज बंद मत करो", "durdurmayın lütfen")
	for _, s := range texts {
		p, n := m.Predict(s, nil), m.PredictNormalized(optout.Normalize(s), nil)
		if !slices.Equal(n, p) {
			t.Errorf("PredictNormalized(Normalize(%q)) = %v, Predict = %v", s, n, p)
		}
	}
	predictConcurrently(t, m, texts)
}
