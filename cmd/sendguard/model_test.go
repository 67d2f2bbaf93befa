package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
)

func runCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

// model train is deterministic through the command too, and model eval
// reads what it wrote.
func TestModelTrainAndEval(t *testing.T) {
	dir := t.TempDir()
	fixture := "../../internal/model/testdata/fixture/"
	var files [2][]byte
	for i := range files {
		out := filepath.Join(dir, "m"+string(rune('a'+i)))
		if msg, err := runCmd(t, "", "model", "train", "--task", "outbound", "--data", fixture+"outbound.tsv", "--out", out); err != nil {
			t.Fatalf("model train: %v\n%s", err, msg)
		} else if !strings.Contains(msg, "training examples") || !strings.Contains(msg, "held out") {
			t.Errorf("model train printed %q", msg)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = b
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("model train twice on the same data wrote different files")
	}
	msg, err := runCmd(t, "", "model", "eval", "--task", "outbound", "--data", fixture+"outbound.tsv", "--model", filepath.Join(dir, "ma"), "--split", "all")
	if err != nil {
		t.Fatalf("model eval: %v\n%s", err, msg)
	}
	for _, want := range []string{"accuracy", "precision", "recall", "promotional", "lang", "blocked", "slowed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("model eval output lacks %q:\n%s", want, msg)
		}
	}
	msg, err = runCmd(t, "", "model", "eval", "--task", "inbound", "--data", fixture+"inbound.tsv", "--model", filepath.Join(dir, "ma"))
	if err == nil || !strings.Contains(err.Error(), "outbound model, not inbound") {
		t.Errorf("model eval of an outbound model as inbound = %v, want a refusal\n%s", err, msg)
	}
	for _, args := range [][]string{
		{"model", "train", "--task", "spam", "--data", fixture, "--out", filepath.Join(dir, "x")},
		{"model", "train", "--task", "inbound", "--out", filepath.Join(dir, "x")},
		{"model", "eval", "--task", "inbound", "--data", fixture + "inbound.tsv", "--split", "half"},
		{"model", "fit"},
	} {
		if _, err := runCmd(t, "", args...); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}

// optout classify prints the model's probabilities and the n-grams behind
// its answer; the lists still decide a keyword.
func TestClassifyExplains(t *testing.T) {
	out, err := runCmd(t, "STOP\nS T O P\n", "optout", "classify")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("optout classify printed %q", out)
	}
	var first, second struct {
		Intent, By    string
		Probabilities map[string]float64
		Top           []struct{ Feature, Kind string }
	}
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("optout classify printed %q", out)
	}
	if first.Intent != "opt_out" || first.By != "lists" || len(first.Probabilities) != 3 || len(first.Top) == 0 {
		t.Errorf("classify(STOP) = %+v, want opt_out by the lists, with probabilities and n-grams", first)
	}
	if second.By != "model" || len(second.Top) == 0 {
		t.Errorf("classify(S T O P) = %+v, want the model's answer with n-grams", second)
	}
}

// config check loads the configured model files: a missing file, or a
// model of the other task, fails the check before anything serves.
func TestConfigCheckLoadsModels(t *testing.T) {
	dir := t.TempDir()
	// The shipped outbound model, from its file: a model trained on the
	// small fixture would fail the policy probes (a clean receipt blocked),
	// which config check refuses too, but that is another test's subject.
	outModel, err := filepath.Abs("../../internal/model/models/outbound.model")
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, extra, want string }{
		{"missing file", "optout:\n  model:\n    path: " + filepath.Join(dir, "nope.model") + "\n", "optout.model"},
		{"other task", "optout:\n  model:\n    path: " + outModel + "\n", "outbound model, not inbound"},
		{"its own task", "risk:\n  model:\n    path: " + outModel + "\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(cfg, append(append([]byte(nil), base...), "\n"+tc.extra...), 0o600); err != nil {
				t.Fatal(err)
			}
			msg, err := runCmd(t, "", "config", "check", "--config", cfg)
			if tc.want == "" && err != nil {
				t.Errorf("config check with %s: %v\n%s", tc.name, err, msg)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("config check with %s = %v, want an error mentioning %q", tc.name, err, tc.want)
			}
		})
	}
}

// model train --task inbound writes the inbound feature spec (unigrams,
// and the length class crossed with them), and model eval --opt-out-threshold moves the opt-out line:
// a higher one never finds more opt-outs.
func TestModelTrainInboundSpecAndThreshold(t *testing.T) {
	dir := t.TempDir()
	fixture := fixtureTSV("inbound")
	out := filepath.Join(dir, "in.model")
	if msg, err := runCmd(t, "", "model", "train", "--task", "inbound", "--data", fixture, "--out", out, "--epochs", "3"); err != nil {
		t.Fatalf("model train: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b[:512], []byte(`"words":1,`)) || !bytes.Contains(b[:512], []byte(`"len_words":true`)) {
		t.Errorf("model train --task inbound: header %q lacks words 1 and len_words", b[:300])
	}
	recall := func(thr string) string {
		t.Helper()
		args := []string{"model", "eval", "--task", "inbound", "--data", fixture, "--model", out, "--split", "all"}
		if thr != "" {
			args = append(args, "--opt-out-threshold", thr)
		}
		msg, err := runCmd(t, "", args...)
		if err != nil {
			t.Fatalf("model eval %v: %v\n%s", args, err, msg)
		}
		_, line, _ := strings.Cut(msg, "as serve decides")
		line, _, _ = strings.Cut(line, "\n\n")
		return line
	}
	def, low, high := recall(""), recall("0.45"), recall("0.99")
	if !strings.Contains(def, "opt_out >= 0.45") || def != low {
		t.Errorf("model eval without --opt-out-threshold printed %q; with 0.45 %q: want the same, at 0.45", def, low)
	}
	if !strings.Contains(high, "opt_out >= 0.99") || high == low {
		t.Errorf("model eval --opt-out-threshold 0.99 printed %q; at 0.45 %q: want another line", high, low)
	}
}

// fixtureTSV is the path of the task's fixture corpus
// (internal/model/testdata/fixture) from this package.
func fixtureTSV(task string) string { return "../../internal/model/testdata/fixture/" + task + ".tsv" }

// trainFixtureFile runs `model train` on the task's fixture with flags
// and epochs into dir, and returns the file's path and bytes.
func trainFixtureFile(t *testing.T, dir, name, task string, epochs int, flags ...string) (string, []byte) {
	t.Helper()
	out := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".model")
	args := append([]string{"model", "train", "--task", task, "--data", fixtureTSV(task), "--out", out, "--epochs", strconv.Itoa(epochs)}, flags...)
	if msg, err := runCmd(t, "", args...); err != nil {
		t.Fatalf("model train %v: %v\n%s", flags, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return out, b
}

// model train --negators --char-weight writes them into the header
// (format 3), and model eval reads the file back; the inbound task has
// them without the flags, the outbound task neither field.
func TestModelTrainNegatorsAndCharWeight(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, task string
		flags      []string
		want       bool
	}{
		{"inbound", "inbound", nil, true},
		{"outbound", "outbound", nil, false},
		{"outbound with the flags", "outbound", []string{"--negators", "--char-weight", "0.5"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, b := trainFixtureFile(t, dir, tc.name, tc.task, 3, tc.flags...)
			head := b[:min(len(b), 2048)]
			got := bytes.Contains(head, []byte(`"neg_window":2`)) && bytes.Contains(head, []byte(`"char_weight":0.5`)) && bytes.Contains(head, []byte(`"negators":"`))
			if got != tc.want || (!tc.want && (bytes.Contains(head, []byte("negators")) || bytes.Contains(head, []byte("char_weight")))) {
				t.Errorf("model train %v: header %q; want negators and char_weight = %v", tc.flags, head[:min(len(head), 400)], tc.want)
			}
			if msg, err := runCmd(t, "", "model", "eval", "--task", tc.task, "--data", fixtureTSV(tc.task), "--model", out, "--split", "all"); err != nil || !strings.Contains(msg, "as serve decides") {
				t.Errorf("model eval of the %s model: %v\n%s", tc.name, err, msg)
			}
		})
	}
}

// model train writes the task's feature spec: inbound with the negator
// bigrams in 2^19 buckets (format 6: TestModelTrainNegChars), outbound with every bigram in 2^18;
// --bucket-bits overrides the task's buckets and nothing else.
func TestModelTrainTaskSpec(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, task string
		flags      []string
		want       []string
	}{
		{"inbound", "inbound", nil, []string{`"words":1`, `"bucket_bits":19`, `"len_words":true`, `"neg_bigrams":true`}},
		{"outbound", "outbound", nil, []string{`"words":2`, `"bucket_bits":18`}},
		{"inbound --bucket-bits 18", "inbound", []string{"--bucket-bits", "18"}, []string{`"words":1`, `"bucket_bits":18`, `"len_words":true`, `"neg_bigrams":true`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b := trainFixtureFile(t, dir, tc.name, tc.task, 2, tc.flags...)
			head := b[:min(len(b), 2048)]
			for _, w := range tc.want {
				if !bytes.Contains(head, []byte(w)) {
					t.Errorf("model train --task %s %v: header %q; want %s", tc.task, tc.flags, head[:min(len(head), 300)], w)
				}
			}
		})
	}
}

// model train --concepts N sets the concept features: the inbound task
// has the classes, those near a negator and the pairs within 3 words
// without the flag; -1 drops them, 1 keeps the classes alone, 2 adds those
// near a negator; the outbound task has none but asked, and then no
// negator marks to cross them with. Without the negated character
// n-grams (--neg-chars 0) the inbound files are format 5 with the classes,
// 4 without.
func TestModelTrainConcepts(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, task string
		flags      []string
		concepts   bool
		neg        bool
		pairs      int
		version    uint32
	}{
		{"inbound", "inbound", nil, true, true, 3, 6},
		{"inbound --neg-chars 0", "inbound", []string{"--neg-chars", "0"}, true, true, 3, 5},
		{"inbound --concepts -1", "inbound", []string{"--concepts", "-1", "--neg-chars", "0"}, false, false, 0, 4},
		{"inbound --concepts 1", "inbound", []string{"--concepts", "1", "--neg-chars", "0"}, true, false, 0, 5},
		{"inbound --concepts 2", "inbound", []string{"--concepts", "2", "--neg-chars", "0"}, true, true, 0, 5},
		{"outbound", "outbound", nil, false, false, 0, 2},
		{"outbound --concepts 3", "outbound", []string{"--concepts", "3"}, true, false, 3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b := trainFixtureFile(t, dir, tc.name, tc.task, 2, tc.flags...)
			m, err := model.Load(b)
			if err != nil {
				t.Fatal(err)
			}
			s := m.Spec
			if (s.Concepts != "") != tc.concepts || s.ConceptNeg != tc.neg || s.ConceptPairs != tc.pairs || (tc.concepts && s.Concepts != model.ConceptLexicon()) {
				t.Errorf("model train --task %s %v: concepts %v, concept_neg %v, concept_pairs %d; want %v, %v, %d", tc.task, tc.flags, s.Concepts != "", s.ConceptNeg, s.ConceptPairs, tc.concepts, tc.neg, tc.pairs)
			}
			// The format version: little-endian, after the 8-byte magic.
			if v := uint32(b[8]) | uint32(b[9])<<8 | uint32(b[10])<<16 | uint32(b[11])<<24; v != tc.version {
				t.Errorf("model train --task %s %v: format %d, want %d", tc.task, tc.flags, v, tc.version)
			}
		})
	}
}

// model train --neg-chars: the inbound task has the negated character
// n-grams without the flag (format 6), and with 0 does not; the outbound
// task has no negators, so none even when asked.
func TestModelTrainNegChars(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, task string
		flags      []string
		negChars   bool
	}{
		{"inbound", "inbound", nil, true},
		{"inbound --neg-chars 1", "inbound", []string{"--neg-chars", "1"}, true},
		{"inbound --neg-chars 0", "inbound", []string{"--neg-chars", "0"}, false},
		{"outbound --neg-chars 1", "outbound", []string{"--neg-chars", "1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b := trainFixtureFile(t, dir, tc.name, tc.task, 2, tc.flags...)
			m, err := model.Load(b)
			if err != nil {
				t.Fatal(err)
			}
			if m.Spec.NegChars != tc.negChars {
				t.Errorf("model train --task %s %v: neg_chars %v, want %v", tc.task, tc.flags, m.Spec.NegChars, tc.negChars)
			}
		})
	}
}
