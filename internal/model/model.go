// Package model holds sendguard's learned text classifiers: inbound intent
// (opt_out, opt_in, none) and outbound content (transactional, promotional,
// cold_outreach, political, scam).
//
// Features survive paraphrase, typos, spacing and script: character
// n-grams (1 to 5 runes) over the opt-out normaliser's output with a space
// around every word, plus word unigrams and bigrams (outbound), or word
// unigrams, the bigrams that hold a negator, the words near a negator, the
// message's length class and the unigrams crossed with it, and the concept
// classes of a small multilingual lexicon, alone, near a negator and in
// pairs (inbound, TaskSpec), with runs of spaced-out letters joined ("S T O P" reads as
// "stop"), all hashed (FNV-1a, murmur finaliser) into 2^18 buckets
// (outbound) or 2^19 (inbound). The classifier is a multinomial logistic
// regression trained by Train deterministically: the same examples give the
// same model file, byte for byte.
//
// A model file is data: a header (magic, format version, task, classes,
// feature spec, normaliser version, SHA-256 of the training examples), the
// biases and the non-zero weight rows quantised to 16 bits, and a SHA-256
// trailer. The shipped models are embedded (Embedded); a path in the config
// overrides them (Load). The package does no I/O but the model bytes it is
// handed.
//
// A Model is immutable after Load and safe for concurrent use; Predict
// allocates nothing but what the normaliser does, its scratch comes from a
// sync.Pool owned by the Model.
package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/sendguard/sendguard/internal/optout"
)

// Tasks and their classes, in the order of a model's probabilities.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Classes returns the classes of a task, nil for an unknown task.
func Classes(task string) []string {
	switch task {
	case Inbound:
		return []string{"opt_out", "opt_in", "none"}
	case Outbound:
		return []string{"transactional", "promotional", "cold_outreach", "political", "scam"}
	}
	return nil
}

// MaxClasses bounds the classes of a model.
const MaxClasses = 8

// FormatVersion is the newest model file format Train writes. Version 2
// added the feature spec's len_words; version 3 the negator marks and the
// character n-gram weight (Spec.Negators, Spec.CharWeight), which change
// what Predict computes but not the layout. Train writes version 3 only
// for a spec that uses them and version 2 otherwise, so the shipped specs'
// files are what they were. Version 4 adds the negator bigrams
// (Spec.NegBigrams), written only for a spec that has them. Load reads
// versions 1 to 6 (a version-1 file has no len_words, a version-1 or 2
// file neither version-3 field, a version-1 to 3 file no neg_bigrams, a
// version-1 to 4 file no concepts) and
// refuses a header field it does not know, so a file that asks for a
// feature this build lacks is refused rather than misread. Version 5 adds
// the concept classes (Spec.Concepts, ConceptNeg, ConceptPairs), written
// only for a spec that has them; Load refuses them in an older version.
// Version 6 adds the negated character n-grams (Spec.NegChars), written
// only for a spec that has them.
const FormatVersion = 6

// minFormatVersion is the oldest format Load reads.
const minFormatVersion = 1

var magic = [8]byte{'S', 'G', 'M', 'O', 'D', 'E', 'L', '\n'}

// Header describes a model file.
type Header struct {
	Task          string   `json:"task"`
	Classes       []string `json:"classes"`
	Spec          Spec     `json:"spec"`
	TrainSHA256   string   `json:"train_sha256"`   // of the training examples, canonical order (see DataHash)
	TrainExamples int      `json:"train_examples"` // how many
	HoldoutPct    int      `json:"holdout_pct"`    // the share of the corpus held out of training
	Trainer       Params   `json:"trainer"`
}

// Model is a trained classifier.
type Model struct {
	Header
	k     int
	bias  [MaxClasses]float64
	scale float64 // weight = int16 × scale
	w     []int16 // bucket-major: w[b*k+c]
	mk    *marks  // Spec.marks()
	pool  sync.Pool
}

type scratch struct {
	norm  []byte // the normalised text
	text  []byte // prepared
	feats []uint32
	offs  []int32
	// Room for a message of up to 480 bytes: a fresh scratch (the pool
	// empties at garbage collection, and the race detector drops what is
	// put back at random) is one allocation, not one per slice and growth.
	normA  [480]byte
	textA  [480]byte
	featsA [480*7 + conceptRoom]uint32 // extractFast asks for 7 per byte with CharMax 5, and marks.most
	offsA  [480]int32
}

// conceptRoom is the room a scratch keeps for concept features: marks.most
// of the shipped lexicon (TestConceptLexicon holds it to that).
const conceptRoom = 480

func newScratch() *scratch {
	sc := &scratch{}
	sc.norm, sc.text, sc.feats, sc.offs = sc.normA[:0], sc.textA[:0], sc.featsA[:0], sc.offsA[:0]
	return sc
}

// Predict appends to dst the probability of each class, in the order of
// m.Classes, and returns it. With cap(dst) >= len(m.Classes) it allocates
// nothing beyond the normaliser's own work.
func (m *Model) Predict(text string, dst []float64) []float64 {
	sc, _ := m.pool.Get().(*scratch)
	if sc == nil {
		sc = newScratch()
	}
	dst = m.predict(sc, text, dst)
	if cap(sc.text) <= 64<<10 {
		m.pool.Put(sc)
	}
	return dst
}

// PredictNormalized is Predict for text already through the opt-out
// normaliser: PredictNormalized(optout.Normalize(s), dst) equals
// Predict(s, dst), bit for bit, without normalising s a second time (a
// caller that needs the normalised text itself, as the risk scanner does,
// pays for it once). The normaliser is idempotent, so this holds; n must
// be its output.
func (m *Model) PredictNormalized(n string, dst []float64) []float64 {
	sc, _ := m.pool.Get().(*scratch)
	if sc == nil {
		sc = newScratch()
	}
	sc.text = m.Spec.prepareNormalized(sc.text, n)
	dst = m.score(sc, dst)
	if cap(sc.text) <= 64<<10 {
		m.pool.Put(sc)
	}
	return dst
}

func (m *Model) predict(sc *scratch, text string, dst []float64) []float64 {
	// What Spec.prepare does, without its copy of the normalised text: the
	// string below is a view of sc.norm, which nothing writes while
	// prepareNormalized reads it and which nothing keeps after.
	sc.norm = optout.AppendNormalized(sc.norm[:0], text)
	sc.text = m.Spec.prepareNormalized(sc.text, unsafe.String(unsafe.SliceData(sc.norm), len(sc.norm)))
	return m.score(sc, dst)
}

// score is the class probabilities of sc.text, prepared: the bias plus
// the sum of the features' weight rows (exact, in integers) times the
// norm, character n-grams at Spec.CharWeight.
func (m *Model) score(sc *scratch, dst []float64) []float64 {
	var nchar int
	sc.feats, sc.offs, nchar = m.Spec.extractFast(sc.feats[:0], sc.offs, sc.text, m.mk)
	var acc, cacc [MaxClasses]int64
	if m.Spec.CharWeight > 0 {
		sumRows(&cacc, m.w, m.k, sc.feats[:nchar])
		sumRows(&acc, m.w, m.k, sc.feats[nchar:])
	} else {
		sumRows(&acc, m.w, m.k, sc.feats)
	}
	k := m.k
	var logits [MaxClasses]float64
	norm := m.scale * m.Spec.norm(len(sc.feats))
	for c := range k {
		logits[c] = m.bias[c] + float64(acc[c])*norm + float64(cacc[c])*norm*m.Spec.CharWeight
	}
	return softmax(dst, logits[:k])
}

func softmax(dst []float64, z []float64) []float64 {
	top := slices.Max(z)
	sum := 0.0
	start := len(dst)
	for _, v := range z {
		e := math.Exp(v - top)
		dst = append(dst, e)
		sum += e
	}
	for i := start; i < len(dst); i++ {
		dst[i] /= sum
	}
	return dst
}

// Contribution is one feature's push toward a class.
type Contribution struct {
	Feature string  `json:"feature"` // the n-gram (spaces mark word edges in character n-grams), or a concept class ("EMAIL", "EMAIL>HERE" for a pair)
	Kind    string  `json:"kind"`    // char, word, bigram, len_word, length, neg_word, concept, concept_neg or concept_pair
	Weight  float64 `json:"weight"`  // its logit for the class minus its mean logit over the classes
}

// Explain returns the at most n features that pushed class c the most
// (largest positive contribution first), on the prepared text. It
// re-extracts the features with their strings: it is for operators, not
// the hot path.
func (m *Model) Explain(text string, c, n int) []Contribution {
	if c < 0 || c >= m.k || n <= 0 {
		return nil
	}
	p := m.Spec.prepare(nil, text)
	var spans []span
	feats, _ := m.Spec.extractNeg(nil, p, m.mk, &spans)
	norm := m.scale * m.Spec.norm(len(feats))
	type key struct {
		kind uint8
		s    string
	}
	sum := map[key]float64{}
	for i, b := range feats {
		row := m.w[int(b)*m.k : int(b)*m.k+m.k]
		mean := 0.0
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(m.k)
		sp := spans[i]
		f := string(p[sp.start:sp.end])
		switch sp.kind {
		case kindLen:
			f = lenNames[lenClass(len(bytes.Fields(p)))]
		case kindConcept, kindConceptNeg, kindConceptPair:
			f = m.mk.conceptName(sp)
		}
		v := (float64(row[c]) - mean) * norm
		if (sp.kind == kindChar || sp.kind == kindCharNeg) && m.Spec.CharWeight > 0 {
			v *= m.Spec.CharWeight
		}
		sum[key{sp.kind, f}] += v
	}
	out := make([]Contribution, 0, len(sum))
	for k, v := range sum {
		if v > 0 {
			out = append(out, Contribution{Feature: k.s, Kind: kindNames[k.kind], Weight: v})
		}
	}
	slices.SortFunc(out, func(a, b Contribution) int {
		if a.Weight != b.Weight {
			if a.Weight > b.Weight {
				return -1
			}
			return 1
		}
		if a.Kind != b.Kind {
			if a.Kind < b.Kind {
				return -1
			}
			return 1
		}
		if a.Feature < b.Feature {
			return -1
		}
		if a.Feature > b.Feature {
			return 1
		}
		return 0
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Class returns the index of a class name, or -1.
func (m *Model) Class(name string) int { return slices.Index(m.Classes, name) }

// ErrFormat is wrapped by every error Load returns for bytes that are not
// a model file this version reads.
var ErrFormat = errors.New("not a sendguard model file")

// Load decodes a model file.
func Load(b []byte) (*Model, error) {
	if len(b) < len(magic)+8+sha256.Size || !bytes.Equal(b[:len(magic)], magic[:]) {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch (truncated or altered)", ErrFormat)
	}
	r := body[len(magic):]
	v := binary.LittleEndian.Uint32(r)
	if v < minFormatVersion || v > FormatVersion {
		return nil, fmt.Errorf("%w: format version %d, this build reads %d to %d", ErrFormat, v, minFormatVersion, FormatVersion)
	}
	hl := int(binary.LittleEndian.Uint32(r[4:]))
	r = r[8:]
	if hl > len(r) {
		return nil, fmt.Errorf("%w: header length %d", ErrFormat, hl)
	}
	m := &Model{}
	dec := json.NewDecoder(bytes.NewReader(r[:hl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m.Header); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrFormat, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: header: data after the JSON object", ErrFormat)
	}
	if v < 2 && m.Spec.LenWords {
		return nil, fmt.Errorf("%w: format version %d with a version-2 feature spec", ErrFormat, v)
	}
	if v < 3 && (m.Spec.Negators != "" || m.Spec.NegWindow != 0 || m.Spec.CharWeight != 0) {
		return nil, fmt.Errorf("%w: format version %d with a version-3 feature spec", ErrFormat, v)
	}
	if v < 4 && m.Spec.NegBigrams {
		return nil, fmt.Errorf("%w: format version %d with a version-4 feature spec", ErrFormat, v)
	}
	if v < 5 && (m.Spec.Concepts != "" || m.Spec.ConceptNeg || m.Spec.ConceptPairs != 0) {
		return nil, fmt.Errorf("%w: format version %d with a version-5 feature spec", ErrFormat, v)
	}
	if v < 6 && m.Spec.NegChars {
		return nil, fmt.Errorf("%w: format version %d with a version-6 feature spec", ErrFormat, v)
	}
	r = r[hl:]
	if !m.Spec.valid() {
		return nil, fmt.Errorf("%w: feature spec %+v (this build normalises with %s)", ErrFormat, m.Spec, NormalizerVersion)
	}
	if want := Classes(m.Task); want == nil || !slices.Equal(want, m.Classes) {
		return nil, fmt.Errorf("%w: task %q with classes %v", ErrFormat, m.Task, m.Classes)
	}
	m.k = len(m.Classes)
	mk, err := m.Spec.marks()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	m.mk = mk
	if len(r) < 4*(m.k+1) {
		return nil, fmt.Errorf("%w: short body", ErrFormat)
	}
	for c := range m.k {
		m.bias[c] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r[4*c:])))
	}
	m.scale = float64(math.Float32frombits(binary.LittleEndian.Uint32(r[4*m.k:])))
	r = r[4*(m.k+1):]
	m.w = make([]int16, (1<<m.Spec.BucketBits)*m.k)
	if r, err = readRows(r, m.w, m.k); err != nil {
		return nil, err
	}
	if len(r) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrFormat, len(r))
	}
	return m, nil
}

// readRows decodes sparse rows of k int16 values into w (row-major) from
// r: a row count, then for each non-zero row the gap from the previous
// row's index and its k values, as varints. It returns what follows.
func readRows(r []byte, w []int16, k int) ([]byte, error) {
	buckets := len(w) / k
	rows, n := binary.Uvarint(r)
	if n <= 0 || rows > uint64(buckets) {
		return nil, fmt.Errorf("%w: row count", ErrFormat)
	}
	r = r[n:]
	bucket := -1
	for range rows {
		gap, n := binary.Uvarint(r)
		if n <= 0 || gap == 0 || gap > uint64(buckets) {
			return nil, fmt.Errorf("%w: row gap", ErrFormat)
		}
		r = r[n:]
		bucket += int(gap)
		if bucket >= buckets {
			return nil, fmt.Errorf("%w: bucket %d out of range", ErrFormat, bucket)
		}
		for c := range k {
			v, n := binary.Varint(r)
			if n <= 0 || v < math.MinInt16 || v > math.MaxInt16 {
				return nil, fmt.Errorf("%w: weight", ErrFormat)
			}
			r = r[n:]
			w[bucket*k+c] = int16(v)
		}
	}
	return r, nil
}

// encode writes the model file of a header, biases and float weights
// (bucket-major), quantising the weights to int16.
func encode(h Header, bias []float64, w []float64) []byte {
	k := len(h.Classes)
	hj, err := json.Marshal(h)
	if err != nil {
		panic("model: header: " + err.Error()) // plain strings and numbers: cannot fail
	}
	version := uint32(2)
	if h.Spec.NegWindow > 0 || h.Spec.CharWeight != 0 {
		version = 3
	}
	if h.Spec.NegBigrams {
		version = 4
	}
	if h.Spec.Concepts != "" {
		version = 5
	}
	if h.Spec.NegChars {
		version = 6
	}
	b := append([]byte(nil), magic[:]...)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hj)))
	b = append(b, hj...)
	for c := range k {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(bias[c])))
	}
	scale := quantScale(w)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(scale))
	b = appendRows(b, w, k, scale)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// quantScale is the scale that maps the largest |w| to MaxInt16.
func quantScale(w []float64) float32 {
	maxAbs := 0.0
	for _, v := range w {
		maxAbs = math.Max(maxAbs, math.Abs(v))
	}
	if maxAbs > 0 {
		return float32(maxAbs / math.MaxInt16)
	}
	return 1
}

// appendRows appends w (rows of k) quantised by scale, in readRows'
// layout: only the rows that are not all zero.
func appendRows(b []byte, w []float64, k int, scale float32) []byte {
	q := make([]int16, len(w))
	rows := 0
	for i := 0; i < len(w); i += k {
		nz := false
		for c := range k {
			q[i+c] = int16(math.Round(w[i+c] / float64(scale)))
			nz = nz || q[i+c] != 0
		}
		if nz {
			rows++
		}
	}
	b = binary.AppendUvarint(b, uint64(rows))
	prev := -1
	for i := 0; i < len(q); i += k {
		row := q[i : i+k]
		if !slices.ContainsFunc(row, func(v int16) bool { return v != 0 }) {
			continue
		}
		bucket := i / k
		b = binary.AppendUvarint(b, uint64(bucket-prev))
		prev = bucket
		for _, v := range row {
			b = binary.AppendVarint(b, int64(v))
		}
	}
	return b
}

// Scores makes an inbound model an optout.Scorer: the probabilities of
// opt_out and opt_in (0 for a model without those classes).
func (m *Model) Scores(text string) optout.Scores {
	var buf [MaxClasses]float64
	p := m.Predict(text, buf[:0])
	var s optout.Scores
	if c := m.Class("opt_out"); c >= 0 {
		s.OptOut = p[c]
	}
	if c := m.Class("opt_in"); c >= 0 {
		s.OptIn = p[c]
	}
	return s
}
