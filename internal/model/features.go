package model

import (
	"cmp"
	_ "embed"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sendguard/sendguard/internal/optout"
)

// NormalizerVersion names the text normaliser features are computed on:
// internal/optout.Normalize, then optout.Lookalikes (marks on Latin, Greek
// and Cyrillic letters dropped, lookalike letters of mixed-script words
// written in one script), then unleet (digits written for letters inside
// a word read as the letters: "d1sc0unt" is "discount"). A model file records it; Load refuses a file
// made with a normaliser it does not know, because its n-grams would not be
// the ones Predict extracts, and reads a file of NormalizerV1 (Normalize
// alone, models trained before 28 November 2026) with that normaliser. Bump
// it whenever either changes its output.
const NormalizerVersion = "optout.Normalize/1+optout.Lookalikes/1+unleet/1"

// NormalizerV1 is the normaliser of the model files before Lookalikes:
// optout.Normalize alone.
const NormalizerV1 = "optout.Normalize/1"

// Spec is the feature extraction a model was trained with, recorded in
// its file header.
type Spec struct {
	CharMin    int  `json:"char_min"`    // shortest character n-gram, in runes (1)
	CharMax    int  `json:"char_max"`    // longest character n-gram, in runes (5)
	Words      int  `json:"words"`       // word n-grams up to this length (2: unigrams and bigrams)
	BucketBits int  `json:"bucket_bits"` // features are hashed into 2^BucketBits buckets
	Despace    bool `json:"despace"`     // runs of 3+ one-letter words are joined ("S T O P" is "stop")
	// MinNorm: a message's feature values are 1/sqrt(max(n, MinNorm)) for
	// n features, so a very short message ("hi") carries little evidence
	// and stays near the prior instead of swinging on a few n-grams.
	MinNorm    int    `json:"min_norm"`
	Normalizer string `json:"normalizer"` // NormalizerVersion
	// LenWords adds the message's length class (1, 2-3, 4-7, 8-15 or 16+
	// words) as a feature, and every word unigram crossed with it: a bare
	// "stop" and "stop" inside a complaint are different features, which a
	// linear model cannot form from the two on its own.
	LenWords bool `json:"len_words,omitempty"`
	// Negators are words, normalised and separated by spaces, that mark
	// the words near them: every word within NegWindow words of one (not a
	// negator itself) is a feature again, crossed with "near a negator", so
	// "don't stop" differs from "stop". The list is data (negators.txt),
	// recorded in the model header so Predict marks what training marked.
	Negators  string `json:"negators,omitempty"`
	NegWindow int    `json:"neg_window,omitempty"`
	// CharWeight, when above 0, is the value of a character n-gram
	// occurrence relative to a word feature's (1): below 1 the n-grams, of
	// which a reply has many and most shared by chance with some opt-out
	// ("chegando" holds "chega"), need larger weights to count, which the
	// L2 penalty resists, so the words weigh more. 0 means 1 (format 2).
	CharWeight float64 `json:"char_weight,omitempty"`
	// NegBigrams, with Negators and Words 1, adds the word bigrams that
	// hold a negator and no other bigram: "to e-mail, not WhatsApp" has
	// "not whatsapp" and "to WhatsApp, not e-mail" has "not e" (e-mail),
	// word order the unigrams and the undirected negator marks cannot see,
	// at a fraction of the features of every bigram. Format 4.
	NegBigrams bool `json:"neg_bigrams,omitempty"`
	// Concepts is a lexicon of concept classes (ConceptLexicon, from
	// concepts.txt): one class a line, its name, then its entries, each a
	// word or two normalised, separated by tabs. Every word (or two words
	// in a row) of a class is a feature named by the class, the same in
	// every language ("e-mail", "почту", "الايميل" are all EMAIL), so what
	// the model learns of a class in one language serves the others.
	// Recorded in the model header, as Negators is. Format 5.
	Concepts string `json:"concepts,omitempty"`
	// ConceptNeg, with Concepts and Negators, adds every concept class
	// occurrence within NegWindow words of a negator again, crossed with
	// "near a negator" ("don't stop the messages").
	ConceptNeg bool `json:"concept_neg,omitempty"`
	// ConceptPairs, above 0, adds the ordered pair of every two consecutive
	// concept occurrences at most ConceptPairs words apart ("e-mail, not
	// WhatsApp" is EMAIL>HERE, "only the bills" ONLY>TXN).
	ConceptPairs int `json:"concept_pairs,omitempty"`
	// NegChars, with Negators, adds the character n-grams of every word
	// within NegWindow of a negator again, hashed apart ("nicht löschen"
	// holds "losch" and a negated "losch"), so a negated word the model
	// has not seen as a whole word still reads differently from the plain
	// one. Format 6.
	NegChars bool `json:"neg_chars,omitempty"`
}

// DefaultSpec is the feature extraction of the shipped outbound model, and
// the base of every task's (TaskSpec).
func DefaultSpec() Spec {
	return Spec{CharMin: 1, CharMax: 5, Words: 2, BucketBits: 18, Despace: true, MinNorm: 64, Normalizer: NormalizerVersion}
}

// TaskSpec is the feature extraction `sendguard model train` and `make
// model` use for task. Outbound: DefaultSpec. Inbound: word unigrams, and
// of the bigrams only those that hold a negator (NegBigrams), the length
// class crossed with the words (LenWords), the words within two of a
// negator marked (Negators, NegWindow 2), character n-grams at half a
// word's weight (CharWeight 0.5), and the concept classes of concepts.txt
// with those near a negator and the pairs within three words (Concepts,
// ConceptNeg, ConceptPairs 3), the character n-grams of the words near a
// negator again (NegChars), hashed into 2^19 buckets, which scored
// better on replies by writers the model had not seen (leave-one-round-out,
// the README's Detection section).
func TaskSpec(task string) Spec {
	s := DefaultSpec()
	if task == Inbound {
		s.Words, s.LenWords, s.BucketBits = 1, true, 19
		s.Negators, s.NegWindow, s.CharWeight, s.NegBigrams = Negators(), 2, 0.5, true
		s.Concepts, s.ConceptNeg, s.ConceptPairs = ConceptLexicon(), true, 3
		s.NegChars = true
	}
	return s
}

func (s Spec) valid() bool {
	return s.CharMin >= 1 && s.CharMax >= s.CharMin && s.CharMax <= 8 && s.Words >= 0 && s.Words <= 2 &&
		(s.Words >= 1 || !s.LenWords) && s.BucketBits >= 8 && s.BucketBits <= 24 && s.MinNorm >= 0 && (s.Normalizer == NormalizerVersion || s.Normalizer == NormalizerV1) &&
		s.CharWeight >= 0 && s.CharWeight <= 1 && s.NegWindow >= 0 && s.NegWindow <= 4 && (s.Negators == "") == (s.NegWindow == 0) && (s.Words >= 1 || s.NegWindow == 0) &&
		(!s.NegBigrams || (s.NegWindow > 0 && s.Words == 1)) &&
		(s.Concepts == "" || s.Words >= 1) && (!s.ConceptNeg || (s.Concepts != "" && s.NegWindow > 0)) &&
		s.ConceptPairs >= 0 && s.ConceptPairs <= 8 && (s.ConceptPairs == 0 || s.Concepts != "") &&
		(!s.NegChars || s.NegWindow > 0)
}

// norm is the value of one feature occurrence in a message of n features.
func (s *Spec) norm(n int) float64 { return 1 / math.Sqrt(float64(max(1, n, s.MinNorm))) }

// Seeds keep the three kinds of feature apart: the word "stop" and the
// character 4-gram "stop" are different features.
const (
	seedChar    uint32 = 2166136261 // FNV-1a offset basis
	seedWord    uint32 = 2166136261 ^ 0x9e3779b9
	seedBigram  uint32 = 2166136261 ^ 0x85ebca6b
	seedLen     uint32 = 2166136261 ^ 0xc2b2ae35 // xor the length class
	seedNeg     uint32 = 2166136261 ^ 0x27d4eb2f
	seedCon     uint32 = 2166136261 ^ 0x165667b1 // a concept class
	seedConNeg  uint32 = 2166136261 ^ 0xd3a2646c // a concept class near a negator
	seedConPair uint32 = 2166136261 ^ 0xfd7046c5 // two concept classes in a row
	seedCharNeg uint32 = 2166136261 ^ 0x6a09e667 // a character n-gram of a word near a negator
	fnvPrime    uint32 = 16777619
)

// Kinds of feature, for explanations.
const (
	kindChar = iota
	kindWord
	kindBigram
	kindLenWord
	kindLen
	kindNeg
	kindConcept
	kindConceptNeg
	kindConceptPair
	kindCharNeg // a character n-gram of a word near a negator (Spec.NegChars)
)

// kindNames name the kinds in explanations.
var kindNames = [...]string{"char", "word", "bigram", "len_word", "length", "neg_word", "concept", "concept_neg", "concept_pair", "char_neg"}

// lenNames name the length classes in explanations.
var lenNames = [...]string{"1 word", "2-3 words", "4-7 words", "8-15 words", "16+ words"}

// lenClass is the length class of a reply of n words: 0 for 1 word, 1 for
// 2-3, 2 for 4-7, 3 for 8-15, 4 for 16 or more.
func lenClass(n int) uint32 { return uint32(min(bits.Len(uint(max(n, 1)))-1, 4)) }

// span is where a feature came from in the prepared text, for Explain.
type span struct {
	kind       uint8
	c1, c2     uint8 // the concept classes of a concept feature
	start, end int32
}

// prepare appends to dst the text features are extracted from: the
// normalised text with a space before and after (so n-grams see word
// starts and ends), and, with Despace, runs of three or more one-rune words
// joined into one word.
func (s *Spec) prepare(dst []byte, text string) []byte {
	dst = optout.AppendNormalized(dst[:0], text)
	return s.prepareNormalized(dst, string(dst)) // one copy: dst is rewritten
}

// prepareNormalized is prepare for n, optout.Normalize's output; n must
// not share memory with dst.
func (s *Spec) prepareNormalized(dst []byte, n string) []byte {
	if s.Normalizer != NormalizerV1 {
		n = unleet(optout.Lookalikes(n)) // n itself for most text
	}
	dst = append(slices.Grow(dst[:0], len(n)+2), ' ') // one allocation at most: a fresh scratch costs few
	if !s.Despace {
		dst = append(dst, n...)
		return append(dst, ' ')
	}
	// Walk words; a run of single-rune words of length >= 3 is written
	// without its spaces.
	i := 0
	for i < len(n) {
		// Count the run of single-rune words starting at i.
		j, run := i, 0
		for j < len(n) {
			_, sz := utf8.DecodeRuneInString(n[j:])
			if j+sz == len(n) || n[j+sz] == ' ' {
				run++
				j += sz
				if j < len(n) {
					j++ // the space
				}
				continue
			}
			break
		}
		if run >= 3 {
			for k := i; k < j; k++ {
				if n[k] != ' ' {
					dst = append(dst, n[k])
				}
			}
			dst = append(dst, ' ')
			i = j
			continue
		}
		// Copy one word (and the space after it).
		k := i
		for k < len(n) && n[k] != ' ' {
			k++
		}
		dst = append(dst, n[i:k]...)
		dst = append(dst, ' ')
		i = k + 1
	}
	if len(dst) == 1 {
		return append(dst, ' ')
	}
	return dst
}

// mix is murmur3's 32-bit finaliser: FNV-1a's low bits are weak on their
// own.
func mix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func fnv(h uint32, b []byte) uint32 {
	for _, c := range b {
		h ^= uint32(c)
		h *= fnvPrime
	}
	return h
}

// marks is what a Spec's word features look up, built once per model
// (Spec.marks): the negator hashes and the concept lexicon.
type marks struct {
	neg []uint32 // sorted word hashes of Spec.Negators
	// con is the concept entries, sorted: an entry's word hash (of its
	// two words with the space between, for a two-word entry) in the high
	// 32 bits, the mask of its classes in the low.
	con   []uint64
	multi bool     // some entry has two words
	names []string // the classes, in Spec.Concepts' order
	// The hashes of the classes' features (before mix): hc[c] of class
	// c, hn[c] of c near a negator, hp[a*len(names)+b] of a then b.
	hc, hn, hp []uint32
	// most bounds the concept features of one text: each of the at most
	// maxOccurrences occurrences has at most k classes (those of a word
	// and of the two-word entry it ends), each alone, near a negator and
	// in k pairs with the occurrence before.
	most int
}

// maxOccurrences is how many concept occurrences of a text appendWords
// counts: the first ones.
const maxOccurrences = 32

// maxConcepts bounds the classes of a lexicon (a class is a bit of a mask).
const maxConcepts = 32

// marks builds what s's word features look up. It fails on a malformed
// Concepts (Load and Train refuse such a spec).
func (s *Spec) marks() (*marks, error) {
	m := &marks{}
	for _, w := range strings.Fields(s.Negators) {
		m.neg = append(m.neg, fnv(seedWord, []byte(w)))
	}
	slices.Sort(m.neg)
	m.neg = slices.Compact(m.neg)
	if s.Concepts == "" {
		return m, nil
	}
	masks := map[uint32]uint32{}
	var one, two []uint32 // the hashes of the one-word and two-word entries
	for line := range strings.Lines(s.Concepts) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		name := f[0]
		if name == "" || strings.ContainsAny(name, " >") || slices.Contains(m.names, name) || len(f) < 2 {
			return nil, fmt.Errorf("concept class %q: empty, repeated, without entries or with a space or '>' in its name", name)
		}
		if len(m.names) == maxConcepts {
			return nil, fmt.Errorf("more than %d concept classes", maxConcepts)
		}
		c := len(m.names)
		m.names = append(m.names, name)
		for _, e := range f[1:] {
			w := strings.Fields(e)
			if len(w) == 0 || len(w) > 2 || strings.Join(w, " ") != e {
				return nil, fmt.Errorf("concept class %s: entry %q is not one or two words with one space", name, e)
			}
			h := fnv(seedWord, []byte(e))
			masks[h] |= 1 << c
			if len(w) == 2 {
				m.multi, two = true, append(two, h)
			} else {
				one = append(one, h)
			}
		}
	}
	for h, mask := range masks {
		m.con = append(m.con, uint64(h)<<32|uint64(mask))
	}
	// An occurrence has the classes of its word and of the two-word entry
	// it ends: at most k.
	k := 0
	for _, hs := range [][]uint32{one, two} {
		most := 0
		for _, h := range hs {
			most = max(most, bits.OnesCount32(masks[h]))
		}
		k += most
	}
	m.most = maxOccurrences * (2*k + k*k)
	slices.Sort(m.con)
	n := len(m.names)
	m.hc, m.hn, m.hp = make([]uint32, n), make([]uint32, n), make([]uint32, n*n)
	for a, na := range m.names {
		m.hc[a] = fnv(seedCon, []byte(na))
		m.hn[a] = fnv(seedConNeg, []byte(na))
		for b, nb := range m.names {
			m.hp[a*n+b] = fnv(fnv(seedConPair, []byte(na+">")), []byte(nb))
		}
	}
	return m, nil
}

// concepts is the class mask of the word (or two words) of hash h, 0 for
// none.
func (m *marks) concepts(h uint32) uint32 {
	i, ok := slices.BinarySearchFunc(m.con, h, func(e uint64, h uint32) int { return cmp.Compare(uint32(e>>32), h) })
	if !ok {
		return 0
	}
	return uint32(m.con[i])
}

// conceptName names a concept feature for Explain: the class, or the two
// classes of a pair with ">" between.
func (m *marks) conceptName(sp span) string {
	if sp.kind == kindConceptPair {
		return m.names[sp.c1] + ">" + m.names[sp.c2]
	}
	return m.names[sp.c1]
}

// scope is the byte ranges of the words within NegWindow of a negator
// (not negators themselves) for Spec.NegChars: the first maxScope such
// words among the first maxScopeWords of a text.
type scope struct {
	r [maxScope][2]int32
	n int
}

const (
	maxScope      = 32
	maxScopeWords = 256
)

// has reports whether byte offset i is inside a word of sc (nil: none).
func (sc *scope) has(i int) bool {
	if sc == nil {
		return false
	}
	for _, r := range sc.r[:sc.n] {
		if int32(i) >= r[0] && int32(i) < r[1] {
			return true
		}
	}
	return false
}

// scopeOf fills sc with the negator scope of the prepared text p and
// returns it, or returns nil when s has no NegChars or p no negator of mk.
// extractNeg and extractFast both call it, so both read the same scope.
func (s *Spec) scopeOf(sc *scope, p []byte, mk *marks) *scope {
	if !s.NegChars || mk == nil || len(mk.neg) == 0 {
		return nil
	}
	var ws [maxScopeWords][2]int32
	var isNeg [maxScopeWords]bool
	nw, any := 0, false
	for i := 1; i < len(p) && nw < len(ws); {
		j := i
		for j < len(p) && p[j] != ' ' {
			j++
		}
		if j > i {
			_, isNeg[nw] = slices.BinarySearch(mk.neg, fnv(seedWord, p[i:j]))
			any = any || isNeg[nw]
			ws[nw] = [2]int32{int32(i), int32(j)}
			nw++
		}
		i = j + 1
	}
	if !any {
		return nil
	}
	sc.n = 0
	for w := 0; w < nw && sc.n < len(sc.r); w++ {
		if isNeg[w] {
			continue
		}
		for k := max(0, w-s.NegWindow); k <= min(nw-1, w+s.NegWindow); k++ {
			if isNeg[k] {
				sc.r[sc.n] = ws[w]
				sc.n++
				break
			}
		}
	}
	return sc
}

// extractNeg appends the bucket of every feature of the prepared text p
// to dst (a feature that occurs twice is there twice), with the negator
// marks and concepts of mk (s.marks(); nil: none) and, when spans is not nil,
// where each came from. Only Explain asks for spans; the hot path needs no
// strings. The character n-grams come first: nchar is how many of the
// features appended are those.
func (s *Spec) extractNeg(dst []uint32, p []byte, mk *marks, spans *[]span) (_ []uint32, nchar int) {
	start := len(dst)
	shift := uint(32 - s.BucketBits)
	emit := func(h uint32, kind uint8, start, end int) {
		dst = append(dst, mix(h)>>shift)
		if spans != nil {
			*spans = append(*spans, span{kind: kind, start: int32(start), end: int32(end)})
		}
	}
	var scb scope
	sc := s.scopeOf(&scb, p, mk)
	// Character n-grams over the padded text, in runes.
	for i := 0; i < len(p); {
		_, first := utf8.DecodeRune(p[i:])
		h, hn, j, neg := seedChar, seedCharNeg, i, sc.has(i)
		for n := 1; n <= s.CharMax && j < len(p); n++ {
			_, sz := utf8.DecodeRune(p[j:])
			h = fnv(h, p[j:j+sz])
			if neg {
				hn = fnv(hn, p[j:j+sz])
			}
			j += sz
			if n >= s.CharMin && !(n == 1 && p[i] == ' ') {
				emit(h, kindChar, i, j)
				if neg {
					emit(hn, kindCharNeg, i, j)
				}
			}
		}
		i += first
	}
	nchar = len(dst) - start
	if s.Words == 0 {
		return dst, nchar
	}
	return s.appendWords(dst, p, mk, spans), nchar
}

// appendWords appends the word features of the prepared text p to dst:
// each word, the bigrams Words and NegBigrams ask for, the words near a
// negator of mk, the length class and the words crossed with it, then the
// concept classes of mk's lexicon (each occurrence's classes, those near a
// negator, the pairs of consecutive occurrences), in that order, with
// where each came from when spans is not nil. extractNeg (training,
// Explain) and extractFast (Predict) share it, so the two never read
// words differently.
func (s *Spec) appendWords(dst []uint32, p []byte, mk *marks, spans *[]span) []uint32 {
	shift := uint(32 - s.BucketBits)
	emit := func(h uint32, kind uint8, start, end int) {
		dst = append(dst, mix(h)>>shift)
		if spans != nil {
			*spans = append(*spans, span{kind: kind, start: int32(start), end: int32(end)})
		}
	}
	var neg []uint32
	con := false
	if mk != nil {
		neg, con = mk.neg, len(mk.con) > 0
	}
	// Words: p is " w1 w2 … wn ".
	prevStart, words, prevNeg := -1, 0, false
	var negAt [16]int // word indexes of the first negators
	nneg := 0
	// The first concept occurrences: the word index, the span and the
	// classes (of the word, and of it with the word before).
	type conceptAt struct {
		w, start, end int
		mask          uint32
	}
	var occ [maxOccurrences]conceptAt
	nocc := 0
	for i := 1; i < len(p); {
		j := i
		for j < len(p) && p[j] != ' ' {
			j++
		}
		if j > i {
			wh := fnv(seedWord, p[i:j])
			emit(wh, kindWord, i, j)
			isNeg := false
			if len(neg) > 0 {
				_, isNeg = slices.BinarySearch(neg, wh)
			}
			if isNeg && nneg < len(negAt) {
				negAt[nneg] = words
				nneg++
			}
			if prevStart >= 0 && (s.Words >= 2 || (s.NegBigrams && (isNeg || prevNeg))) {
				emit(fnv(seedBigram, p[prevStart:j]), kindBigram, prevStart, j)
			}
			if con && nocc < len(occ) {
				at := conceptAt{w: words, start: i, end: j, mask: mk.concepts(wh)}
				if mk.multi && prevStart >= 0 {
					if m2 := mk.concepts(fnv(seedWord, p[prevStart:j])); m2 != 0 {
						at.mask |= m2
						at.start = prevStart
					}
				}
				if at.mask != 0 {
					occ[nocc] = at
					nocc++
				}
			}
			prevStart, prevNeg = i, isNeg
			words++
		}
		i = j + 1
	}
	// near reports whether word w is within NegWindow of a negator and
	// not one itself.
	near := func(w int) bool {
		near, self := false, false
		for _, at := range negAt[:nneg] {
			self = self || at == w
			near = near || (at != w && at-w <= s.NegWindow && w-at <= s.NegWindow)
		}
		return near && !self
	}
	if nneg > 0 && s.NegWindow > 0 {
		// Every word near a negator, not a negator itself, again.
		w := 0
		for i := 1; i < len(p); {
			j := i
			for j < len(p) && p[j] != ' ' {
				j++
			}
			if j > i {
				if near(w) {
					emit(fnv(seedNeg, p[i:j]), kindNeg, i, j)
				}
				w++
			}
			i = j + 1
		}
	}
	if s.LenWords && words > 0 {
		// Every word again, crossed with the length class.
		seed := seedLen ^ lenClass(words)
		emit(seed, kindLen, 0, 0) // Explain names it by lenNames

		for i := 1; i < len(p); {
			j := i
			for j < len(p) && p[j] != ' ' {
				j++
			}
			if j > i {
				emit(fnv(seed, p[i:j]), kindLenWord, i, j)
			}
			i = j + 1
		}
	}
	if nocc > 0 {
		emitC := func(h uint32, kind uint8, c1, c2 int, start, end int) {
			dst = append(dst, mix(h)>>shift)
			if spans != nil {
				*spans = append(*spans, span{kind, uint8(c1), uint8(c2), int32(start), int32(end)})
			}
		}
		n := len(mk.names)
		for _, o := range occ[:nocc] {
			for m := o.mask; m != 0; m &= m - 1 {
				c := bits.TrailingZeros32(m)
				emitC(mk.hc[c], kindConcept, c, 0, o.start, o.end)
			}
		}
		if s.ConceptNeg && nneg > 0 {
			for _, o := range occ[:nocc] {
				if near(o.w) {
					for m := o.mask; m != 0; m &= m - 1 {
						c := bits.TrailingZeros32(m)
						emitC(mk.hn[c], kindConceptNeg, c, 0, o.start, o.end)
					}
				}
			}
		}
		if s.ConceptPairs > 0 {
			for k := 1; k < nocc; k++ {
				a, b := occ[k-1], occ[k]
				if b.w-a.w > s.ConceptPairs {
					continue
				}
				for ma := a.mask; ma != 0; ma &= ma - 1 {
					ca := bits.TrailingZeros32(ma)
					for mb := b.mask; mb != 0; mb &= mb - 1 {
						cb := bits.TrailingZeros32(mb)
						emitC(mk.hp[ca*n+cb], kindConceptPair, ca, cb, a.start, b.end)
					}
				}
			}
		}
	}
	return dst
}

//go:embed negators.txt
var negatorsFile string

// Negators is the negator list of negators.txt for Spec.Negators: every
// word of it normalised as the text features are extracted from is
// (NormalizerVersion), sorted, without repeats, separated by spaces.
func Negators() string {
	var words []string
	for line := range strings.Lines(negatorsFile) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		for _, w := range f[min(1, len(f)):] {
			words = append(words, listWords(w)...)
		}
	}
	slices.Sort(words)
	return strings.Join(slices.Compact(words), " ")
}

// listWords is the words of an entry of a word list (negators.txt,
// concepts.txt) as the features read text (NormalizerVersion: Normalize,
// Lookalikes, unleet), so that an entry matches the words it names.
func listWords(e string) []string {
	return strings.Fields(unleet(optout.Lookalikes(optout.Normalize(e))))
}

//go:embed concepts.txt
var conceptsFile string

// ConceptLexicon is the concept lexicon of concepts.txt for Spec.Concepts:
// one line per class, in the order of their first line in the file, the
// class name then its entries of every language, each normalised as the
// text features are extracted from is (NormalizerVersion), sorted,
// without repeats, separated by tabs. An entry that normalises to more
// than two words is dropped (TestConceptLexicon holds the file to none).
func ConceptLexicon() string {
	var names []string
	entries := map[string][]string{}
	for line := range strings.Lines(conceptsFile) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		if len(f) < 3 {
			continue
		}
		if _, ok := entries[f[0]]; !ok {
			names = append(names, f[0])
		}
		for _, e := range strings.Fields(f[2]) {
			w := listWords(e)
			if len(w) >= 1 && len(w) <= 2 {
				entries[f[0]] = append(entries[f[0]], strings.Join(w, " "))
			}
		}
	}
	var b strings.Builder
	for _, n := range names {
		e := entries[n]
		slices.Sort(e)
		b.WriteString(n)
		for _, w := range slices.Compact(e) {
			b.WriteString("\t" + w)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// leet maps the digits written for letters to them.
var leet = [10]byte{0: 'o', 1: 'i', 3: 'e', 4: 'a', 5: 's', 7: 't'}

// unleet reads digits written for letters inside a word as those letters:
// a run of one or two of 0 1 3 4 5 7 with a letter right before and right
// after it ("d1sc0unt", "pr0ducts", "fr33dom" are "discount", "products",
// "freedom"). Digits at a word's edge stay ("save50", "5pm", "covid19",
// "4412" are codes, times and numbers), as does a run with another digit.
// It returns n itself, without allocating, when it changes nothing.
func unleet(n string) string {
	var b []byte
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' || i == 0 {
			continue
		}
		j := i
		for j < len(n) && n[j] >= '0' && n[j] <= '9' {
			j++
		}
		run := n[i:j]
		if len(run) <= 2 && letterBefore(n, i) && letterAt(n, j) && allLeet(run) {
			if b == nil {
				b = []byte(n)
			}
			for k := i; k < j; k++ {
				b[k] = leet[n[k]-'0']
			}
		}
		i = j - 1
	}
	if b == nil {
		return n
	}
	return string(b)
}

func allLeet(run string) bool {
	for i := 0; i < len(run); i++ {
		if leet[run[i]-'0'] == 0 {
			return false
		}
	}
	return true
}

func letterBefore(n string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(n[:i])
	return unicode.IsLetter(r)
}

func letterAt(n string, i int) bool {
	r, _ := utf8.DecodeRuneInString(n[i:])
	return i < len(n) && unicode.IsLetter(r)
}
