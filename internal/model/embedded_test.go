package model_test

import (
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/model/modeltest"
)

// The shipped models load, are the task they claim, and fit the size
// budget (each file at most 16 MB).
func TestEmbeddedModels(t *testing.T) {
	for _, task := range []string{model.Inbound, model.Outbound} {
		m, err := model.Embedded(task)
		if err != nil {
			t.Fatalf("Embedded(%s): %v", task, err)
		}
		if m.Task != task || m.Spec != model.TaskSpec(task) {
			t.Errorf("Embedded(%s): task %s, spec %+v; want spec %+v", task, m.Task, m.Spec, model.TaskSpec(task))
		}
		if n := model.EmbeddedSize(task); n == 0 || n > 16<<20 {
			t.Errorf("Embedded(%s) is %d bytes, want 1 to 16 MB", task, n)
		}
	}
}

// The shipped models were trained on the training part of the corpus as
// it is now: a corpus change without `make model` fails here.
func TestEmbeddedModelsMatchTheCorpus(t *testing.T) {
	for _, task := range []string{model.Inbound, model.Outbound} {
		t.Run(task, func(t *testing.T) {
			ex := modeltest.Corpus(t, task)
			m, err := model.Embedded(task)
			if err != nil {
				t.Fatal(err)
			}
			train := model.Select(ex, model.TrainSplit)
			if got := model.DataHash(train); got != m.TrainSHA256 || len(train) != m.TrainExamples {
				t.Errorf("embedded %s model trained on %d examples (sha256 %s); the corpus's training part is %d (sha256 %s): run `make model`",
					task, m.TrainExamples, m.TrainSHA256, len(train), got)
			}
		})
	}
}

// The model alone (most probable class) on the held-out part: floors set
// from the first honest run (see the README's Detection section), so a
// regression fails CI. The decision-level floors (lists, thresholds, Rego)
// are in internal/optout and internal/policy.
func TestEmbeddedModelsHeldOut(t *testing.T) {
	floors := map[string]float64{model.Inbound: 0.90, model.Outbound: 0.87}
	for _, task := range []string{model.Inbound, model.Outbound} {
		t.Run(task, func(t *testing.T) {
			ex := modeltest.Corpus(t, task)
			m, err := model.Embedded(task)
			if err != nil {
				t.Fatal(err)
			}
			test := model.Select(ex, model.TestSplit)
			r := model.Evaluate(m.Classes, test, m.Argmax)
			rt := model.Evaluate(m.Classes, model.Select(ex, model.TrainSplit), m.Argmax)
			t.Logf("%s: accuracy train %.1f%% (%d), held out %.1f%% (%d)", task, 100*rt.Accuracy(), rt.Total, 100*r.Accuracy(), r.Total)
			if r.Accuracy() < floors[task] {
				t.Errorf("held-out accuracy of the %s model %.1f%%, floor %.1f%%", task, 100*r.Accuracy(), 100*floors[task])
			}
		})
	}
}
