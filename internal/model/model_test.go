package model

import (
	"bytes"
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/optout"
)

func fixture(t testing.TB, task string) []Example {
	t.Helper()
	f, err := os.Open("testdata/fixture/" + task + ".tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ex, err := ParseTSV(f, task+".tsv", task)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// trainFixture trains on the fixture's training part.
func trainFixture(t testing.TB, task string, p Params) ([]byte, *Model) {
	t.Helper()
	b, m, err := Train(task, fixture(t, task), TaskSpec(task), p)
	if err != nil {
		t.Fatal(err)
	}
	return b, m
}

func TestTrainIsDeterministic(t *testing.T) {
	for _, task := range []string{Inbound, Outbound} {
		t.Run(task, func(t *testing.T) {
			a, _ := trainFixture(t, task, Params{})
			b, _ := trainFixture(t, task, Params{})
			if !bytes.Equal(a, b) {
				t.Fatalf("Train twice on the same data: %d and %d bytes that differ", len(a), len(b))
			}
			// The shuffle matters, so the test above can fail.
			c, _ := trainFixture(t, task, Params{Seed: 7})
			if bytes.Equal(a, c) {
				t.Errorf("Train with seed 7 = the bytes of seed 1; the seed is not used")
			}
			// Line order does not matter: the examples are put in canonical order.
			ex := fixture(t, task)
			for i, j := 0, len(ex)-1; i < j; i, j = i+1, j-1 {
				ex[i], ex[j] = ex[j], ex[i]
			}
			d, _, err := Train(task, ex, TaskSpec(task), Params{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, d) {
				t.Errorf("Train on the reversed file differs from Train on the file")
			}
		})
	}
}

func TestTrainNeverSeesHeldOut(t *testing.T) {
	ex := fixture(t, Inbound)
	_, m := trainFixture(t, Inbound, Params{})
	train := Select(ex, TrainSplit)
	if m.TrainExamples != len(train) || m.TrainSHA256 != DataHash(train) {
		t.Errorf("model header: %d examples, sha %s; want the %d training examples, sha %s",
			m.TrainExamples, m.TrainSHA256, len(train), DataHash(train))
	}
	if len(train) == len(ex) {
		t.Fatalf("fixture of %d examples has none held out; the test proves nothing", len(ex))
	}
}

func TestHeldOutIsBySameNormalisedText(t *testing.T) {
	for _, pair := range [][2]string{{"STOP!", "stop"}, {"Please  stop.", "please stop"}, {"توقف", "تـوقف"}} {
		if HeldOut(pair[0]) != HeldOut(pair[1]) {
			t.Errorf("HeldOut(%q) != HeldOut(%q): one message on both sides of the split", pair[0], pair[1])
		}
	}
	n := 0
	for i := range 2000 {
		if HeldOut("message number " + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i%10)) + strings.Repeat("y", i/70)) {
			n++
		}
	}
	if n < 300 || n > 500 {
		t.Errorf("HeldOut: %d of 2000 held out; want about %d%%", n, HoldoutPct)
	}
}

func TestModelLearnsFixture(t *testing.T) {
	for _, task := range []string{Inbound, Outbound} {
		t.Run(task, func(t *testing.T) {
			_, m := trainFixture(t, task, Params{})
			for _, e := range Select(fixture(t, task), TrainSplit) {
				if got := m.Classes[m.Argmax(e.Text)]; got != e.Label {
					t.Errorf("Argmax(%q) = %s, want %s (a training example)", e.Text, got, e.Label)
				}
				p := m.Predict(e.Text, nil)
				sum := 0.0
				for _, v := range p {
					sum += v
				}
				if len(p) != len(m.Classes) || math.Abs(sum-1) > 1e-9 {
					t.Errorf("Predict(%q) = %v: want %d probabilities summing to 1", e.Text, p, len(m.Classes))
				}
			}
		})
	}
}

func TestDespace(t *testing.T) {
	spec := DefaultSpec()
	for _, tc := range []struct{ in, want string }{
		{"S T O P", " stop "},
		{"S.T.O.P please", " stop please "},
		{"stop", " stop "},
		{"a b", " a b "},
		{"I am at a b c d store", " i am at abcd store "},
		{"", "  "},
		{"!!!", "  "},
	} {
		if got := string(spec.prepare(nil, tc.in)); got != tc.want {
			t.Errorf("prepare(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	good, _ := trainFixture(t, Inbound, Params{Epochs: 2})
	flip := bytes.Clone(good)
	flip[len(flip)/2] ^= 1
	version := bytes.Clone(good)
	version[8] = 9
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"magic", append([]byte("NOTMODEL"), good[8:]...)},
		{"truncated", good[:len(good)-1]},
		{"flipped bit", flip},
		{"version", version},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(tc.b); !errors.Is(err, ErrFormat) {
				t.Errorf("Load(%s) = %v, want ErrFormat", tc.name, err)
			}
		})
	}
	// A header naming another normaliser is refused, checksum and all.
	h := Header{Task: Inbound, Classes: Classes(Inbound), Spec: DefaultSpec()}
	h.Spec.Normalizer = "optout.Normalize/0"
	if _, err := Load(encode(h, make([]float64, 3), make([]float64, 3<<h.Spec.BucketBits))); !errors.Is(err, ErrFormat) {
		t.Errorf("Load(other normaliser) = %v, want ErrFormat", err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load(good) = %v", err)
	}
}

var multilingual = []string{
	"STOP", "S T O P", "please take my number off your list", "أرجو إلغاء الاشتراك وعدم مراسلتي",
	"मुझे और संदेश मत भेजो", "Lütfen bana mesaj göndermeyi bırakın", "отпишите меня", "🙏🙏 stop 🙏",
	"e\u0301te\u0301 ça suffit, arrêtez", "İPTAL", "Your order #4412 has shipped", "خصم 50% لفترة محدودة",
	"", " ", "\u200f\u200e", "a\u0300\u0301\u0302\u0303",
}

func TestPredictConcurrent(t *testing.T) {
	_, m := trainFixture(t, Inbound, Params{Epochs: 5})
	predictConcurrently(t, m, multilingual)
}

// predictConcurrently runs m.Predict on texts from 16 goroutines and wants
// what one goroutine alone gets, bit for bit.
func predictConcurrently(t *testing.T, m *Model, texts []string) {
	t.Helper()
	want := make([][]float64, len(texts))
	for i, s := range texts {
		want[i] = m.Predict(s, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 16 {
		wg.Go(func() {
			buf := make([]float64, 0, MaxClasses)
			for r := range 200 {
				i := (g + r) % len(texts)
				if got := m.Predict(texts[i], buf[:0]); !slices.Equal(got, want[i]) {
					select {
					case errs <- texts[i]:
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

// Predict allocates nothing of its own: only what the normaliser does.
// (The scratch is the one the pool would hand out: under the race detector
// the pool drops items at random, so the test holds it itself.)
func TestPredictAllocations(t *testing.T) {
	_, m := trainFixture(t, Outbound, Params{Epochs: 2})
	msg := "Flash sale! 50% off everything this weekend at our store, shop now"
	buf := make([]float64, 0, MaxClasses)
	sc := &scratch{}
	m.predict(sc, msg, buf)
	norm := testing.AllocsPerRun(100, func() { optout.Normalize(msg) })
	got := testing.AllocsPerRun(100, func() { m.predict(sc, msg, buf[:0]) })
	if got > norm {
		t.Errorf("Predict allocates %.0f times, Normalize %.0f: want nothing beyond the normaliser", got, norm)
	}
}

func TestExplain(t *testing.T) {
	_, m := trainFixture(t, Inbound, Params{})
	top := m.Explain("please stop", m.Class("opt_out"), 3)
	if len(top) == 0 || len(top) > 3 {
		t.Fatalf("Explain(%q) = %v, want 1 to 3 features", "please stop", top)
	}
	for i, c := range top {
		if c.Weight <= 0 || i > 0 && c.Weight > top[i-1].Weight {
			t.Errorf("Explain: %v not positive and descending", top)
		}
		if strings.HasPrefix(c.Kind, "concept") {
			if !slices.Contains(m.mk.names, c.Feature) {
				t.Errorf("Explain: concept feature %q is not a class", c.Feature)
			}
		} else if !strings.Contains(" please stop ", c.Feature) {
			t.Errorf("Explain: feature %q is not from the text", c.Feature)
		}
	}
	if m.Explain("x", 99, 3) != nil || m.Explain("x", 0, 0) != nil {
		t.Errorf("Explain with a bad class or n: want nil")
	}
}

func TestParseTSV(t *testing.T) {
	ex, err := ParseTSV(strings.NewReader("# c\n\nopt_out\ten\tline one\\nline two\\\\x\n"), "f", Inbound)
	if err != nil || len(ex) != 1 || ex[0].Text != "line one\nline two\\x" || ex[0].Lang != "en" {
		t.Errorf("ParseTSV = %+v, %v", ex, err)
	}
	for _, bad := range []string{"opt_out\ten\n", "maybe\ten\thi\n", "opt_out\t\thi\n", "opt_out en hi\n"} {
		if _, err := ParseTSV(strings.NewReader(bad), "f", Inbound); err == nil || !strings.Contains(err.Error(), "f:1") {
			t.Errorf("ParseTSV(%q) = %v, want an error naming f:1", bad, err)
		}
	}
}

func FuzzPredict(f *testing.F) {
	for _, s := range multilingual {
		f.Add(s)
	}
	f.Add("\xff\xfe invalid")
	_, m := trainFixture(f, Inbound, Params{Epochs: 2})
	f.Fuzz(func(t *testing.T, s string) {
		p := m.Predict(s, nil)
		sum := 0.0
		for _, v := range p {
			if math.IsNaN(v) || v < 0 || v > 1 {
				t.Fatalf("Predict(%q) = %v", s, p)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("Predict(%q) = %v, sum %v", s, p, sum)
		}
		m.Explain(s, 0, 3)
	})
}

// PredictNormalized of the normalised text is Predict of the text, bit for
// bit, on multilingual text, marks, bidi controls and invalid UTF-8.
func TestPredictNormalized(t *testing.T) {
	for _, task := range []string{Inbound, Outbound} {
		m, err := Embedded(task)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{
			"Flash sale! 50% off everything", "تم شحن طلبك رقم 5521 وسيصل غدا", "मुझे और संदेश मत भेजो",
			"İPTAL 🙏🙏", "e\u0301te\u0301 ça suffit", "S T O P now", "\u200f\u200e", "", "a\xff\xfe b", "ÇIKIŞ",
		} {
			want := m.Predict(msg, nil)
			got := m.PredictNormalized(optout.Normalize(msg), nil)
			if !slices.Equal(got, want) {
				t.Errorf("%s: PredictNormalized(Normalize(%q)) = %v, Predict = %v", task, msg, got, want)
			}
		}
	}
}

// A model file of NormalizerV1 (before optout.Lookalikes and unleet) still
// loads and reads text as it was trained to, without them; a current one
// reads a lookalike or leetspeak spelling as the plain one. A normaliser this build does not
// know is refused.
func TestNormalizerVersions(t *testing.T) {
	ex := fixture(t, Outbound)
	plain, lookalike, leetspeak := "get 50 off all sneakers", "gеt 50 оff аll snеаkеrs", "get 50 off all sn34k3rs"
	for _, tc := range []struct {
		normalizer string
		same       bool
	}{{NormalizerVersion, true}, {NormalizerV1, false}} {
		spec := TaskSpec(Outbound)
		spec.Normalizer = tc.normalizer
		b, _, err := Train(Outbound, ex, spec, Params{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Load(b)
		if err != nil {
			t.Fatalf("Load(a %s model): %v", tc.normalizer, err)
		}
		for _, spelt := range []string{lookalike, leetspeak} {
			p, q := m.Predict(plain, nil), m.Predict(spelt, nil)
			if got := slices.Equal(p, q); got != tc.same {
				t.Errorf("%s model: Predict(%q) = %v, Predict(%q) = %v; equal = %v, want %v", tc.normalizer, plain, p, spelt, q, got, tc.same)
			}
		}
	}
	spec := TaskSpec(Outbound)
	spec.Normalizer = "optout.Normalize/9"
	if _, _, err := Train(Outbound, ex, spec, Params{}); err == nil {
		t.Error("Train with an unknown normaliser succeeded")
	}
}
