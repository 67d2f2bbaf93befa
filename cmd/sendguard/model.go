package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sendguard/sendguard/internal/admin"
	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/optout"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
)

// models are the classifiers a config asks for: each the file at its
// configured path, else the embedded one; inbound nil when
// optout.model.disabled. versions names each loaded one by task (its
// content's revision and where it came from), for GET /v1/revision.
type models struct {
	inbound, outbound *model.Model
	versions          map[string]admin.Loaded
}

// loadModels loads the models cfg names. A model whose source and content
// are those of prev's (a reload that did not touch it) is prev's, not
// decoded again: a reload costs the request path as little CPU as it can.
// prev may be nil.
func loadModels(cfg *config.Config, prev *models) (models, error) {
	ms := models{versions: map[string]admin.Loaded{}}
	var err error
	if !cfg.OptOut.Model.Disabled {
		if ms.inbound, err = ms.load(cfg.OptOut.Model.Path, model.Inbound, prev); err != nil {
			return ms, fmt.Errorf("optout.model: %w", err)
		}
	}
	if ms.outbound, err = ms.load(cfg.Risk.Model.Path, model.Outbound, prev); err != nil {
		return ms, fmt.Errorf("risk.model: %w", err)
	}
	return ms, nil
}

// load loads task's model from path, or the embedded one when path is
// empty, and records its version; prev's model when it has the same one.
func (ms models) load(path, task string, prev *models) (*model.Model, error) {
	v := admin.Loaded{Revision: model.EmbeddedVersion(task), Source: "embedded"}
	var raw []byte
	if path != "" {
		var err error
		if raw, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read model: %w", err)
		}
		v = admin.Loaded{Revision: contentRevision(raw), Source: path}
	}
	if prev != nil {
		if old, ok := prev.versions[task]; ok && old.Revision == v.Revision && old.Source == v.Source {
			ms.versions[task] = old
			return prev.model(task), nil
		}
	}
	var m *model.Model
	var err error
	if path == "" {
		m, err = model.Embedded(task)
	} else {
		m, err = decodeModel(raw, path, task)
	}
	if err == nil {
		ms.versions[task] = v
	}
	return m, err
}

// model returns the model of task.
func (ms *models) model(task string) *model.Model {
	if task == model.Inbound {
		return ms.inbound
	}
	return ms.outbound
}

// contentRevision names a file by its content as model.EmbeddedVersion
// names the embedded models: the first 12 hex digits of its SHA-256.
func contentRevision(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

// detector is the opt-out detector of cfg: the built-in lists plus
// optout.extra, and the inbound model with optout.model's thresholds.
func (ms models) detector(cfg *config.Config) *optout.Detector {
	d := optout.New(optout.DefaultLists().Merge(cfg.OptOut.Extra))
	if ms.inbound == nil {
		return d
	}
	return d.WithModel(optout.Model{Scorer: ms.inbound, OptOutThreshold: cfg.OptOut.Model.OptOutThreshold, OptInThreshold: cfg.OptOut.Model.OptInThreshold,
		ClauseThreshold: cfg.OptOut.Model.ClauseThreshold, FirstClauseFloor: cfg.OptOut.Model.FirstClauseFloor})
}

// dataFlags collects repeated --data flags.
type dataFlags []string

func (d *dataFlags) String() string { return strings.Join(*d, ",") }

func (d *dataFlags) Set(v string) error { *d = append(*d, v); return nil }

// modelCmd runs `sendguard model train|eval`.
func modelCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "train" && args[0] != "eval") {
		fmt.Fprint(stderr, usage)
		return errors.New("unknown model command (want train or eval)")
	}
	fs := flag.NewFlagSet("model "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	task := fs.String("task", "", "inbound (opt-out intent) or outbound (content)")
	var data dataFlags
	fs.Var(&data, "data", "a corpus directory (holding <task>/*.tsv, or *.tsv) or file; repeatable")
	out := fs.String("out", "", "train: the model file to write")
	buckets := fs.Int("bucket-bits", 0, "train: hash features into 2^N buckets (0: the task's default, 19 inbound, 18 outbound)")
	epochs := fs.Int("epochs", 0, "train: passes over the data (0: default)")
	charWeight := fs.Float64("char-weight", 0, "train: a character n-gram's value relative to a word's (0: the task's default)")
	negators := fs.Bool("negators", false, "train: mark the words within two words of a negator (internal/model/negators.txt) as features of their own (the inbound spec has them already)")
	negChars := fs.Int("neg-chars", -1, "train: 1 adds the character n-grams of the words near a negator again, hashed apart; 0 does not (-1: the task's default, 1 inbound)")
	concepts := fs.Int("concepts", 0, "train: concept class features (internal/model/concepts.txt): 1 the classes, 2 also near a negator, 3 also pairs of consecutive classes within 3 words; -1 none (0: the task's default)")
	optOutThr := fs.Float64("opt-out-threshold", 0, "eval --task inbound: the model's opt_out threshold, to read the trade-off curve (0: optout.model's default)")
	modelPath := fs.String("model", "", "eval: the model file (default: the embedded model)")
	split := fs.String("split", string(model.TestSplit), "eval: test (held out), train or all")
	policies := fs.String("policies", getenv("SENDGUARD_POLICIES"), "eval --task outbound: Rego policy directory instead of the embedded policies")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if model.Classes(*task) == nil {
		return fmt.Errorf("--task must be %s or %s", model.Inbound, model.Outbound)
	}
	if len(data) == 0 {
		return errors.New("--data is required")
	}
	ex, files, err := readCorpus(data, *task)
	if err != nil {
		return err
	}
	switch args[0] {
	case "train":
		if *out == "" {
			return errors.New("--out is required")
		}
		spec := model.TaskSpec(*task)
		if *buckets != 0 {
			spec.BucketBits = *buckets
		}
		if *negators {
			spec.Negators, spec.NegWindow = model.Negators(), 2
		}
		switch {
		case *concepts < 0:
			spec.Concepts, spec.ConceptNeg, spec.ConceptPairs = "", false, 0
		case *concepts > 0:
			spec.Concepts, spec.ConceptNeg, spec.ConceptPairs = model.ConceptLexicon(), *concepts >= 2 && spec.NegWindow > 0, 0
			if *concepts >= 3 {
				spec.ConceptPairs = 3
			}
		}
		if *negChars >= 0 {
			spec.NegChars = *negChars == 1 && spec.NegWindow > 0
		}
		prm := model.Params{Epochs: *epochs}
		if *charWeight > 0 {
			spec.CharWeight = *charWeight
		}
		b, m, err := model.Train(*task, ex, spec, prm)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			return fmt.Errorf("write model: %w", err)
		}
		train, test := model.Select(ex, model.TrainSplit), model.Select(ex, model.TestSplit)
		fmt.Fprintf(stdout, "%s: %s model from %d files: %d training examples (sha256 %s), %d held out; %d bytes\n",
			*out, *task, files, len(train), m.TrainSHA256, len(test), len(b))
		fmt.Fprintf(stdout, "accuracy: train %.1f%%, held out %.1f%%\n",
			100*model.Evaluate(m.Classes, train, m.Argmax).Accuracy(), 100*model.Evaluate(m.Classes, test, m.Argmax).Accuracy())
		return nil
	default:
		var m *model.Model
		if *modelPath == "" {
			m, err = model.Embedded(*task)
		} else {
			m, err = loadModel(*modelPath, *task)
		}
		if err != nil {
			return err
		}
		s := model.Split(*split)
		if !slices.Contains([]model.Split{model.TrainSplit, model.TestSplit, model.AllSplits}, s) {
			return fmt.Errorf("--split must be train, test or all, not %q", *split)
		}
		part := model.Select(ex, s)
		fmt.Fprintf(stdout, "%s model (trained on %d examples, sha256 %s), %s split of %d files: %d examples\n",
			*task, m.TrainExamples, m.TrainSHA256, s, files, len(part))
		if s != model.TestSplit {
			fmt.Fprintln(stdout, "note: the train part is what the model was fitted on; only the test split is an estimate")
		}
		fmt.Fprintln(stdout, "\nthe model alone (most probable class):")
		model.Evaluate(m.Classes, part, m.Argmax).Print(stdout)
		if *task == model.Inbound {
			return evalIntent(m, part, *optOutThr, stdout)
		}
		return evalContent(ctx, m, part, *policies, stdout)
	}
}

// evalIntent prints the figures of what serve decides: the built-in lists,
// then the model at the default thresholds (the opt-out one at
// optOutThreshold when it is above 0), on the message and its clauses.
func evalIntent(m *model.Model, ex []model.Example, optOutThreshold float64, w io.Writer) error {
	d := optout.New(optout.DefaultLists()).WithModel(optout.Model{Scorer: m, OptOutThreshold: optOutThreshold})
	if optOutThreshold <= 0 {
		optOutThreshold = optout.DefaultOptOutThreshold
	}
	classes := model.Classes(model.Inbound)
	r := model.Evaluate(classes, ex, func(s string) int { return slices.Index(classes, string(d.Classify(s).Intent)) })
	fmt.Fprintf(w, "\nas serve decides (the lists, then the model at opt_out >= %.2f, opt_in >= %.2f, a clause's opt_out >= %.2f, the first one's when the message's is >= %.2f):\n",
		optOutThreshold, optout.DefaultOptInThreshold, optout.DefaultClauseThreshold, optout.DefaultFirstClauseFloor)
	fmt.Fprintf(w, "opt-out recall %.1f%%, false opt-outs %.2f%% of the other replies, false opt-ins %.2f%% of the other replies\n\n",
		100*r.Recall(0), 100*r.Rate([]int{1, 2}, []int{0}), 100*r.Rate([]int{0, 2}, []int{1}))
	r.Print(w)
	return nil
}

// evalContent prints the figures of what serve decides on each message
// declared transactional: the native signals and the model's, weighed by
// the Rego risk policy (the embedded one, or --policies).
func evalContent(ctx context.Context, m *model.Model, ex []model.Example, policies string, w io.Writer) error {
	e, err := policy.New(ctx, policy.Options{Dir: policies, CacheEntries: -1})
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	sc := risk.New(risk.Options{Model: m})
	type row struct{ n, blocked, slowed int }
	rows := map[string]*row{}
	var labels []string
	for _, x := range ex {
		d, err := e.Eval(ctx, policy.Input{Purpose: "transactional", PurposePresent: true, Signals: sc.Scan(x.Text)})
		if err != nil {
			return err
		}
		for _, k := range []string{x.Label, x.Label + "\t" + x.Lang} {
			r := rows[k]
			if r == nil {
				r = &row{}
				rows[k] = r
				labels = append(labels, k)
			}
			r.n++
			if d.Error == "policy_violation" {
				r.blocked++
			} else if d.Allow && d.Throttle {
				r.slowed++
			}
		}
	}
	slices.Sort(labels)
	fmt.Fprintf(w, "\nas serve decides, every message declared transactional (the scanner with the model, the Rego risk policy):\n%-15s %-8s %6s %9s %9s\n", "label", "lang", "n", "blocked", "slowed")
	for _, k := range labels {
		r := rows[k]
		label, lang, _ := strings.Cut(k, "\t")
		if lang == "" {
			lang = "all"
		}
		fmt.Fprintf(w, "%-15s %-8s %6d %8.1f%% %8.1f%%\n", label, lang, r.n, 100*float64(r.blocked)/float64(r.n), 100*float64(r.slowed)/float64(r.n))
	}
	return nil
}

// loadModel reads a model file and checks it is for task.
func loadModel(path, task string) (*model.Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	return decodeModel(b, path, task)
}

// decodeModel decodes the model file b read from path, which must be a
// model of task.
func decodeModel(b []byte, path, task string) (*model.Model, error) {
	m, err := model.Load(b)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if m.Task != task {
		return nil, fmt.Errorf("model %s is a %s model, not %s", path, m.Task, task)
	}
	return m, nil
}

// readCorpus reads every path: a file, a directory of *.tsv files, or a
// directory with a <task> subdirectory of them.
func readCorpus(paths []string, task string) ([]model.Example, int, error) {
	var ex []model.Example
	files := 0
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, 0, fmt.Errorf("corpus: %w", err)
		}
		list := []string{p}
		if st.IsDir() {
			dir := p
			if sub, err := os.Stat(filepath.Join(p, task)); err == nil && sub.IsDir() {
				dir = filepath.Join(p, task)
			}
			list, err = filepath.Glob(filepath.Join(dir, "*.tsv"))
			if err != nil {
				return nil, 0, err
			}
			if len(list) == 0 {
				return nil, 0, fmt.Errorf("corpus: no .tsv files in %s", dir)
			}
			slices.Sort(list)
		}
		for _, name := range list {
			f, err := os.Open(name)
			if err != nil {
				return nil, 0, fmt.Errorf("corpus: %w", err)
			}
			e, err := model.ParseTSV(f, name, task)
			f.Close()
			if err != nil {
				return nil, 0, err
			}
			ex = append(ex, e...)
			files++
		}
	}
	return ex, files, nil
}
