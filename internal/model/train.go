package model

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Params are the trainer's settings, recorded in the model header. The
// zero value of a field means its default.
type Params struct {
	Epochs       int     `json:"epochs"`        // passes over the data (default 30)
	LearningRate float64 `json:"learning_rate"` // AdaGrad's base rate (default 0.5)
	L2           float64 `json:"l2"`            // L2 penalty per update of a weight (default 1e-4)
	Seed         uint64  `json:"seed"`          // of the fixed shuffle (default 1)
}

func (p Params) withDefaults() Params {
	if p.Epochs <= 0 {
		p.Epochs = 30
	}
	if p.LearningRate <= 0 {
		p.LearningRate = 0.5
	}
	if p.L2 <= 0 {
		p.L2 = 1e-4
	}
	if p.Seed == 0 {
		p.Seed = 1
	}
	return p
}

// Train fits a model of task on the training part of examples (every
// example HeldOut reports is dropped first: training never sees the test
// part) and returns the model file and the model it decodes to, so what is
// evaluated is what ships, quantisation included.
//
// Training is deterministic: examples are put in canonical order, shuffled
// each epoch by a PCG seeded with p.Seed, and fitted by AdaGrad SGD on the
// softmax loss with L2; the same
// examples, spec and params give the same bytes.
func Train(task string, examples []Example, spec Spec, p Params) ([]byte, *Model, error) {
	classes := Classes(task)
	if classes == nil {
		return nil, nil, fmt.Errorf("unknown task %q", task)
	}
	if !spec.valid() {
		return nil, nil, fmt.Errorf("invalid feature spec %+v", spec)
	}
	p = p.withDefaults()
	ex := canonical(Select(examples, TrainSplit))
	if len(ex) == 0 {
		return nil, nil, errors.New("no training examples")
	}
	k := len(classes)
	type row struct {
		y     int
		feats []uint32
		vals  []float64
	}
	rows := make([]row, len(ex))
	var buf []byte
	var feats []uint32
	mk, err := spec.marks()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid feature spec: %w", err)
	}
	for i, e := range ex {
		y := slices.Index(classes, e.Label)
		if y < 0 {
			return nil, nil, fmt.Errorf("example %q: label %q is not one of %v", e.Text, e.Label, classes)
		}
		buf = spec.prepare(buf, e.Text)
		var nchar int
		feats, nchar = spec.extractNeg(feats[:0], buf, mk, nil)
		// Distinct buckets with their summed values, each occurrence
		// 1/sqrt(n) as Predict counts it (a character n-gram's times
		// CharWeight when that is set).
		norm := spec.norm(len(feats))
		cw := float64(norm * spec.CharWeight)
		type fv struct {
			b    uint32
			char bool
		}
		all := make([]fv, len(feats))
		for j, f := range feats {
			all[j] = fv{f, j < nchar && spec.CharWeight > 0}
		}
		slices.SortFunc(all, func(a, b fv) int { return cmp.Compare(a.b, b.b) })
		r := row{y: y}
		for j := 0; j < len(all); {
			l, nc, no := j, 0, 0
			for l < len(all) && all[l].b == all[j].b {
				if all[l].char {
					nc++
				} else {
					no++
				}
				l++
			}
			r.feats = append(r.feats, all[j].b)
			r.vals = append(r.vals, float64(float64(nc)*cw)+float64(no)*norm)
			j = l
		}
		rows[i] = r
	}

	buckets := 1 << spec.BucketBits
	w := make([]float64, buckets*k)
	g2 := make([]float64, buckets*k)
	bias := make([]float64, k)
	bg2 := make([]float64, k)
	rng := rand.New(rand.NewPCG(p.Seed, 0x5e4d6a4d))
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	z := make([]float64, k)
	prob := make([]float64, 0, k)
	const eps = 1e-8
	for range p.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			r := rows[i]
			copy(z, bias)
			for j, f := range r.feats {
				x := r.vals[j]
				for c := range k {
					z[c] += float64(w[int(f)*k+c] * x)
				}
			}
			prob = softmax(prob[:0], z)
			for c := range k {
				d := prob[c]
				if c == r.y {
					d -= 1
				}
				// Explicit float64 conversions keep the compiler from
				// fusing multiply-adds, which differ across architectures.
				bg2[c] += float64(d * d)
				bias[c] -= float64(p.LearningRate * d / math.Sqrt(bg2[c]+eps))
				for j, f := range r.feats {
					at := int(f)*k + c
					g := float64(d*r.vals[j]) + float64(p.L2*w[at])
					g2[at] += float64(g * g)
					w[at] -= float64(p.LearningRate * g / math.Sqrt(g2[at]+eps))
				}
			}
		}
	}
	h := Header{Task: task, Classes: classes, Spec: spec, TrainSHA256: DataHash(ex), TrainExamples: len(ex), HoldoutPct: HoldoutPct, Trainer: p}
	b := encode(h, bias, w)
	m, err := Load(b)
	if err != nil {
		return nil, nil, fmt.Errorf("decode the trained model: %w", err)
	}
	return b, m, nil
}
