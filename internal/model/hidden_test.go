package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"
)

// hiddenSpec is a spec with a hidden layer of 8 units.
func hiddenSpec() Spec {
	s := TaskSpec(Inbound)
	s.Hidden, s.HiddenBits = 8, 12
	return s
}

// xorExamples are four replies whose label is the exclusive or of two word
// choices: "alpha" or "beta", then "gamma" or "delta". With character
// unigrams and words only, a reply's features are the sum of its two
// words' features, so no linear model fits all four; a hidden layer can.
func xorExamples(t *testing.T) []Example {
	t.Helper()
	var ex []Example
	for _, e := range [][2]string{
		{"none", "alpha gamma"}, {"none", "beta delta"}, {"opt_out", "alpha delta"}, {"opt_out", "beta gamma"},
	} {
		if HeldOut(e[1]) {
			t.Fatalf("%q is in the held-out split: Train would not see it; pick other words", e[1])
		}
		ex = append(ex, Example{Label: e[0], Lang: "en", Text: e[1]})
	}
	return ex
}

// A hidden layer learns a conjunction of two words that the linear model
// cannot: the same features; the linear model at its default rate, the
// hidden layer with the linear part all but frozen (rate 1e-6), so what
// fits is the layer's doing.
func TestHiddenLayerLearnsConjunction(t *testing.T) {
	ex := xorExamples(t)
	base := Spec{CharMin: 1, CharMax: 1, Words: 1, BucketBits: 12, MinNorm: 64, Normalizer: NormalizerVersion}
	hidden := base
	hidden.Hidden, hidden.HiddenBits = 8, 12
	for _, tc := range []struct {
		name string
		spec Spec
		p    Params
		fits bool
	}{
		{"linear", base, Params{Epochs: 300}, false},
		{"hidden layer", hidden, Params{Epochs: 300, LearningRate: 1e-6, HiddenRate: 0.1}, true},
	} {
		_, m, err := Train(Inbound, ex, tc.spec, tc.p)
		if err != nil {
			t.Fatal(err)
		}
		right := 0
		for _, e := range ex {
			if m.Classes[m.Argmax(e.Text)] == e.Label {
				right++
			}
		}
		if fits := right == len(ex); fits != tc.fits {
			t.Errorf("%s: %d of %d conjunction examples right; want all right = %v", tc.name, right, len(ex), tc.fits)
		}
	}
}

// A model with a hidden layer trains to the same bytes every time, is
// written as format 3 and reads back to the same predictions; the same
// file labelled format 2 is refused (format 2 has no hidden layer), and
// a model without one is still written as format 2.
func TestHiddenLayerFile(t *testing.T) {
	ex := fixture(t, Inbound)
	a, m, err := Train(Inbound, ex, hiddenSpec(), Params{Epochs: 20})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Train(Inbound, ex, hiddenSpec(), Params{Epochs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("Train with a hidden layer twice: %d and %d bytes that differ", len(a), len(b))
	}
	c, _, err := Train(Inbound, ex, hiddenSpec(), Params{Epochs: 20, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Errorf("Train with seed 7 = the bytes of seed 1")
	}
	if v := binary.LittleEndian.Uint32(a[len(magic):]); v != 3 {
		t.Errorf("Train with a hidden layer wrote format %d, want 3", v)
	}
	noHidden, _, err := Train(Inbound, ex, TaskSpec(Inbound), Params{Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(noHidden[len(magic):]); v != 2 {
		t.Errorf("Train without a hidden layer wrote format %d, want 2", v)
	}
	if m.hid != 8 || len(m.e) != 8<<12 || len(m.w2) != 8*3 {
		t.Fatalf("loaded hidden layer: %d units, %d embedding values, %d dense weights; want 8, %d, 24", m.hid, len(m.e), len(m.w2), 8<<12)
	}
	// The hidden layer takes part: without it the probabilities differ.
	flat, err := Load(a)
	if err != nil {
		t.Fatal(err)
	}
	flat.hid = 0
	differ := false
	for _, s := range multilingual {
		if !slices.Equal(m.Predict(s, nil), flat.Predict(s, nil)) {
			differ = true
		}
	}
	if !differ {
		t.Errorf("Predict with and without the hidden layer agree on every reply: the layer is not used")
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"version 2 with a hidden layer", withVersion(t, a, 2, nil)},
		{"hidden layer cut short", resealed(a[:len(a)-40])},
		{"hidden units over the bound", withVersion(t, a, 3, func(h map[string]any) { h["spec"].(map[string]any)["hidden"] = MaxHidden + 1 })},
		{"hidden bits over the bucket bits", withVersion(t, a, 3, func(h map[string]any) { h["spec"].(map[string]any)["hidden_bits"] = 19 })},
		{"hidden units without hidden bits", withVersion(t, a, 3, func(h map[string]any) { delete(h["spec"].(map[string]any), "hidden_bits") })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.b); !errors.Is(err, ErrFormat) {
				t.Errorf("Load(%s) = %v, want ErrFormat", tc.name, err)
			}
		})
	}
	if _, err := Load(withVersion(t, a, 3, nil)); err != nil {
		t.Errorf("Load(re-sealed version 3) = %v; the test's rewriting is wrong", err)
	}
}

// resealed is b (a model file without its checksum trailer cut to some
// length) with a fresh trailer, so only the cut is wrong.
func resealed(b []byte) []byte {
	body := slices.Clone(b[:len(b)-32])
	sum := sha256.Sum256(body)
	return append(body, sum[:]...)
}

// Predict with a hidden layer is safe from many goroutines on
// multilingual replies (Arabic, Hindi, Turkish, emoji, combining marks):
// each gets what one goroutine alone gets, and PredictNormalized agrees.
func TestHiddenLayerPredictConcurrent(t *testing.T) {
	_, m, err := Train(Inbound, fixture(t, Inbound), hiddenSpec(), Params{Epochs: 5})
	if err != nil {
		t.Fatal(err)
	}
	want := make([][]float64, len(multilingual))
	for i, s := range multilingual {
		want[i] = m.Predict(s, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 16 {
		wg.Go(func() {
			buf := make([]float64, 0, MaxClasses)
			for r := range 200 {
				i := (g + r) % len(multilingual)
				if got := m.Predict(multilingual[i], buf[:0]); !slices.Equal(got, want[i]) {
					select {
					case errs <- multilingual[i]:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Errorf("Predict(%q) from many goroutines differs from one goroutine", s)
	}
}
