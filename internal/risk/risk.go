// Package risk computes content signals of an outbound message natively in
// Go, once per request, for the Rego risk policy to weigh. It judges
// nothing itself: weights and thresholds are Rego data.
//
// Vocabulary matching runs on the opt-out normaliser's output (NFKC, case
// folded, Arabic folded, punctuation as spaces), through one Aho-Corasick
// automaton built from every list at New, so a message is scanned once
// whatever the size of the lists. Phrases match on word boundaries only.
//
// The outbound content model (internal/model) adds its class
// probabilities as signals (ModelPromotional, …), in percent rounded to
// 5-point steps: the policy memo keys on each scored signal, so a bounded
// set of values keeps it small.
//
// A Scanner is immutable after New and safe for concurrent use.
package risk

import (
	_ "embed"
	"encoding/json"
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	ahocorasick "github.com/BobuSumisu/aho-corasick"
	"golang.org/x/text/unicode/norm"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/optout"
	"github.com/sendguard/sendguard/internal/textcache"
)

// Signals are counts and ratios over one message.
type Signals struct {
	PromoTerms     int // promotional words and phrases
	CallsToAction  int // "buy now", "click here", …
	DiscountCodes  int // "use code SAVE50": a code of letters and digits after a code word
	Percentages    int // "50%", "٥٠٪": percent figures
	PrizeClaims    int // "you have won", "lottery", …
	ColdOutreach   int // "we help businesses", "are you interested in", …
	Political      int // "vote for", "election", …
	Transactional  int // evidence: an order/invoice/booking/ticket number, a one-time code, tracking
	ShortenerLinks int // links through a URL shortener
	Links          int // links of any kind
	CapsRatioPct   int // upper-case letters among letters, in percent (0 below 12 letters)
	Exclamations   int
	Emoji          int
	Length         int // in runes

	// The content model's probabilities, in percent, rounded to multiples
	// of ModelStep; all 0 when the Scanner has no model.
	ModelTransactional int
	ModelPromotional   int
	ModelColdOutreach  int
	ModelPolitical     int
	ModelScam          int
	// ModelSegmentLead is the content model's reading of a message's
	// parts: the largest lead, in percent, of a violating class
	// (promotional, cold_outreach, political, scam) over transactional in
	// any one segment (Segments) scored alone, rounded to ModelStep, 0
	// when no segment leans that way or the message has no segments. An
	// ad in the last paragraph or a P.S. of a real notice reads as one
	// there, where the whole message's transactional mass hides it.
	ModelSegmentLead int
}

// ModelStep is the granularity of the model signals, in percent.
const ModelStep = 5

// MaxSegments bounds the segments of a message the model scores alone
// (Segments): a long message costs at most this many model calls more
// than a one-line one, and its paragraphs' characters read once more.
// Up to this many paragraphs each is read alone; notices of more are
// rare.
const MaxSegments = 32

// SegmentMinWords is the fewest words a segment needs to be scored: a
// salutation ("Dear parents,") or a bare list item carries too little
// context to read alone.
const SegmentMinWords = 4

// Vocabulary is the data the scanner matches, by category. Platform teams
// extend it (config); every entry is normalised at New.
type Vocabulary struct {
	Promo               []string `json:"promo" yaml:"promo"`
	CallToAction        []string `json:"call_to_action" yaml:"call_to_action"`
	Prize               []string `json:"prize" yaml:"prize"`
	ColdOutreach        []string `json:"cold_outreach" yaml:"cold_outreach"`
	Political           []string `json:"political" yaml:"political"`
	TransactionalAnchor []string `json:"transactional_anchor" yaml:"transactional_anchor"`
	CodeAnchor          []string `json:"code_anchor" yaml:"code_anchor"`
	DiscountAnchor      []string `json:"discount_anchor" yaml:"discount_anchor"`

	// InternalAnchor names an audience inside one organisation: its staff,
	// its members, its shareholders ("staff", "RR. HH.", "الموظفين"). A
	// message that has one is about the organisation's own affairs: a staff
	// raffle's result, a staff council vote, an AGM. Prize and political
	// terms in it do not count.
	InternalAnchor []string `json:"internal_anchor" yaml:"internal_anchor"`
	// SettledAnchor states that money off was already applied, credited or
	// refunded ("applied", "aplicado", "تم تطبيق", "diterapkan"). A promo
	// term or discount code within SettledWindow words of one reports a
	// settled amount, not an offer, and does not count.
	SettledAnchor []string `json:"settled_anchor" yaml:"settled_anchor"`
	// Neutral phrases contain a listed word without its listed meaning
	// ("offer letter", "free of charge", "savings account"): a match inside
	// one does not count.
	Neutral []string `json:"neutral" yaml:"neutral"`
	// Negation words ("no hay", "kein", "without") deny the promo or prize
	// term right after them (at most one word between): "there is no
	// prize draw" offers none.
	Negation []string `json:"negation" yaml:"negation"`
}

// SettledWindow is how many words either side of a settled anchor a promo
// term or discount code is taken to be the amount it settles.
const SettledWindow = 10

//go:embed vocab.json
var builtinVocab []byte

// DefaultVocabulary returns the built-in vocabulary.
func DefaultVocabulary() Vocabulary {
	var v Vocabulary
	if err := json.Unmarshal(builtinVocab, &v); err != nil {
		panic("risk: vocab.json: " + err.Error()) // embedded at build; TestDefaultVocabulary parses it
	}
	return v
}

// Merge returns v with extra's entries added.
func (v Vocabulary) Merge(extra Vocabulary) Vocabulary {
	cat := func(a, b []string) []string { return append(append([]string(nil), a...), b...) }
	return Vocabulary{
		Promo: cat(v.Promo, extra.Promo), CallToAction: cat(v.CallToAction, extra.CallToAction),
		Prize: cat(v.Prize, extra.Prize), ColdOutreach: cat(v.ColdOutreach, extra.ColdOutreach),
		Political: cat(v.Political, extra.Political), TransactionalAnchor: cat(v.TransactionalAnchor, extra.TransactionalAnchor),
		CodeAnchor: cat(v.CodeAnchor, extra.CodeAnchor), DiscountAnchor: cat(v.DiscountAnchor, extra.DiscountAnchor),
		InternalAnchor: cat(v.InternalAnchor, extra.InternalAnchor), SettledAnchor: cat(v.SettledAnchor, extra.SettledAnchor),
		Neutral: cat(v.Neutral, extra.Neutral), Negation: cat(v.Negation, extra.Negation),
	}
}

// Options configure a Scanner. The zero value uses the built-in lists.
type Options struct {
	Vocabulary *Vocabulary // nil: DefaultVocabulary()
	Shorteners []string    // host names, lower case; nil: DefaultShorteners
	// Model is the outbound content model (model.Embedded(model.Outbound)
	// for the shipped one); nil: no model signals, all 0.
	Model *model.Model
	// CacheSize is how many messages' Signals the Scanner remembers
	// (rounded up to a power of two, about 170 bytes each, allocated at
	// New); 0: none, every Scan scans. A message is cached the second time
	// it is seen, keyed on a hash of its bytes (internal/textcache).
	CacheSize int
}

// DefaultShorteners are common URL shortener hosts.
var DefaultShorteners = []string{
	"bit.ly", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "cutt.ly", "rebrand.ly", "shorturl.at",
	"rb.gy", "t.ly", "tiny.cc", "s.id", "lnkd.in", "wa.link", "bit.do", "shorte.st", "adf.ly", "v.gd", "qr.ae",
	"tr.im", "x.co", "soo.gd", "clck.ru", "u.to", "shorturl.com", "tiny.one", "short.io", "bl.ink", "linktr.ee",
	"wa.me", "t.me", "trib.al", "dlvr.it", "fb.me", "amzn.to", "youtu.be",
}

type category uint8

const (
	catPromo category = iota
	catCTA
	catPrize
	catCold
	catPolitical
	catTxAnchor
	catCodeAnchor
	catDiscountAnchor
	catInternal
	catSettled
	catNeutral
	catNegation
	nCategories
)

// Scanner computes Signals.
type Scanner struct {
	scratch    sync.Pool // *scanScratch
	trie       *ahocorasick.Trie
	patterns   []pattern // by pattern index
	shorteners map[string]bool
	model      *model.Model
	classes    [5]int                    // index in the model's probabilities of each model signal, -1 when absent
	cache      *textcache.Cache[Signals] // nil: none
}

// scanScratch is one Scan's reusable memory.
type scanScratch struct {
	text   []byte   // the normalised text, for the trie
	words  []string // its words
	starts []int    // their byte offsets
}

type pattern struct {
	cats  []category
	words int
}

// New compiles opts' vocabulary.
func New(opts Options) *Scanner {
	v := DefaultVocabulary()
	if opts.Vocabulary != nil {
		v = *opts.Vocabulary
	}
	lists := [nCategories][]string{v.Promo, v.CallToAction, v.Prize, v.ColdOutreach, v.Political, v.TransactionalAnchor, v.CodeAnchor, v.DiscountAnchor,
		v.InternalAnchor, v.SettledAnchor, v.Neutral, v.Negation}
	index := map[string]int{}
	s := &Scanner{shorteners: map[string]bool{}}
	var strs []string
	for c, list := range lists {
		for _, p := range list {
			n := fold(p)
			if n == "" {
				continue
			}
			i, ok := index[n]
			if !ok {
				i = len(strs)
				index[n] = i
				strs = append(strs, n)
				s.patterns = append(s.patterns, pattern{words: len(strings.Fields(n))})
			}
			// A term in two languages' lists ("gratis", "premio") is one
			// term: it counts once, not once per list.
			if !slices.Contains(s.patterns[i].cats, category(c)) {
				s.patterns[i].cats = append(s.patterns[i].cats, category(c))
			}
		}
	}
	s.trie = ahocorasick.NewTrieBuilder().AddStrings(strs).Build()
	s.cache = textcache.New[Signals](opts.CacheSize)
	s.model = opts.Model
	if s.model != nil {
		for i, c := range [...]string{"transactional", "promotional", "cold_outreach", "political", "scam"} {
			s.classes[i] = s.model.Class(c)
		}
	}
	sh := opts.Shorteners
	if sh == nil {
		sh = DefaultShorteners
	}
	for _, h := range sh {
		s.shorteners[strings.ToLower(h)] = true
	}
	return s
}

// Scan computes the signals of msg. With a cache (Options.CacheSize) a
// message seen before may be answered from it: the same Signals.
func (s *Scanner) Scan(msg string) Signals { return s.cache.Do(msg, s.scan) }

// CacheStats returns the cache's counters; all 0 without a cache.
func (s *Scanner) CacheStats() textcache.Stats { return s.cache.Stats() }

// scan is Scan without the cache.
func (s *Scanner) scan(msg string) Signals {
	var sig Signals
	letters, upper := 0, 0
	prevDigit := false
	for _, r := range msg {
		sig.Length++
		if (r == '%' || r == '٪') && prevDigit {
			sig.Percentages++
		}
		prevDigit = r >= '0' && r <= '9' || r >= '٠' && r <= '٩'
		switch {
		case r == '!':
			sig.Exclamations++
		case unicode.IsLetter(r):
			letters++
			if unicode.IsUpper(r) {
				upper++
			}
		case isEmoji(r):
			sig.Emoji++
		}
	}
	if letters >= 12 {
		sig.CapsRatioPct = upper * 100 / letters
	}
	var text string
	sig.Links, sig.ShortenerLinks, text = s.links(msg)

	// The model reads the whole message normalised. Without links, text
	// is msg's words joined by single spaces, which the normaliser reads as
	// msg (it turns every run of non-word runes into one space;
	// FuzzNormalizeWords): normalise once for both. The normaliser is most
	// of a multilingual message's cost.
	var normMsg, norm string
	if sig.Links == 0 {
		normMsg = optout.Normalize(msg)
		norm = foldNormalized(normMsg)
	} else {
		norm = fold(text)
	}
	sx, _ := s.scratch.Get().(*scanScratch)
	if sx == nil {
		sx = new(scanScratch)
	}
	defer s.scratch.Put(sx)
	// The words of norm and their start offsets, ascending, to turn byte
	// matches into word positions (norm has single spaces between words).
	words, starts := sx.words[:0], sx.starts[:0]
	for off := 0; off < len(norm); {
		end := strings.IndexByte(norm[off:], ' ')
		if end < 0 {
			end = len(norm)
		} else {
			end += off
		}
		if end > off {
			words, starts = append(words, norm[off:end]), append(starts, off)
		}
		off = end + 1
	}
	sx.words, sx.starts = words, starts
	defer clear(sx.words) // no message text kept alive in the pool
	// First pass: every match on word boundaries, and the context they
	// are read in (neutral phrases, an internal audience, settled amounts).
	type hit struct {
		cat        category
		start, end int // bytes in norm
		word, next int // word index of the match and just after it
	}
	var buf [24]hit
	hits := buf[:0]
	var neutral [][2]int // byte spans of neutral phrases
	var settled []int    // word index of each settled anchor
	var negated []int    // word index just after each negation
	internal := false
	sx.text = append(sx.text[:0], norm...)
	s.trie.Walk(sx.text, func(last, n, pi int64) bool {
		start, end := int(last-n+1), int(last+1)
		if start > 0 && norm[start-1] != ' ' || end < len(norm) && norm[end] != ' ' {
			return true // not on word boundaries
		}
		p := s.patterns[pi]
		w, _ := slices.BinarySearch(starts, start) // start is on a word boundary
		for _, c := range p.cats {
			switch c {
			case catNeutral:
				neutral = append(neutral, [2]int{start, end})
			case catInternal:
				internal = true
			case catSettled:
				settled = append(settled, w)
			case catNegation:
				negated = append(negated, w+p.words)
			default:
				hits = append(hits, hit{cat: c, start: start, end: end, word: w, next: w + p.words})
			}
		}
		return true
	})
	// The settled scope: the anchor's sentence, and a sentence next to it
	// that has no call to action ("Coupon X applied. Total after
	// discount: …" settles; "… applied. Mega sale, shop now" does not).
	var sc scope
	if len(settled) > 0 {
		sc.sentence = s.sentences(msg, len(words))
		if sc.sentence != nil {
			sc.cta = make([]bool, sc.sentence[len(sc.sentence)-1]+1)
			for _, h := range hits {
				if h.cat == catCTA {
					sc.cta[sc.sentence[h.word]] = true
				}
			}
		}
	}
	var anchors [nCategories][]int // word index just after each anchor match
	for _, h := range hits {
		if slices.ContainsFunc(neutral, func(n [2]int) bool { return n[0] <= h.start && h.end <= n[1] }) {
			continue // "offer" in "offer letter"
		}
		switch h.cat {
		case catPromo:
			if !sc.near(settled, h.word) && !denied(negated, h.word) {
				sig.PromoTerms++
			}
		case catCTA:
			sig.CallsToAction++
		case catPrize:
			if !internal && !denied(negated, h.word) {
				sig.PrizeClaims++
			}
		case catCold:
			sig.ColdOutreach++
		case catPolitical:
			if !internal {
				sig.Political++
			}
		case catDiscountAnchor:
			if !sc.near(settled, h.word) {
				anchors[h.cat] = append(anchors[h.cat], h.next)
			}
		default:
			anchors[h.cat] = append(anchors[h.cat], h.next)
		}
	}
	sig.Transactional = evidence(words, anchors[catTxAnchor], 3, isReference) + evidence(words, anchors[catCodeAnchor], 4, isOneTimeCode)
	sig.DiscountCodes = evidence(words, anchors[catDiscountAnchor], 2, isDiscountCode)
	if s.model != nil {
		var buf [model.MaxClasses]float64
		var p []float64
		if sig.Links == 0 {
			p = s.model.PredictNormalized(normMsg, buf[:0])
		} else {
			p = s.model.Predict(msg, buf[:0])
		}
		pct := func(i int) int {
			if i < 0 {
				return 0
			}
			return int(math.Round(p[i]*100/ModelStep)) * ModelStep
		}
		sig.ModelTransactional, sig.ModelPromotional, sig.ModelColdOutreach = pct(s.classes[0]), pct(s.classes[1]), pct(s.classes[2])
		sig.ModelPolitical, sig.ModelScam = pct(s.classes[3]), pct(s.classes[4])
		sig.ModelSegmentLead = s.segmentLead(msg, buf[:0])
	}
	return sig
}

// segmentLead is Signals.ModelSegmentLead of msg; buf is scratch for the
// probabilities.
func (s *Scanner) segmentLead(msg string, buf []float64) int {
	_, lead := s.strongestSegment(msg, buf)
	return int(math.Round(lead*100/ModelStep)) * ModelStep
}

// StrongestSegment is the segment of msg (Segments) in which a violating
// class leads transactional most, read alone by the content model, and
// that lead (a difference of probabilities, unrounded): what
// Signals.ModelSegmentLead reads, for explanations. "" and 0 when no
// segment leans that way, msg has none, or the Scanner has no model.
func (s *Scanner) StrongestSegment(msg string) (string, float64) {
	if s.model == nil {
		return "", 0
	}
	var buf [model.MaxClasses]float64
	return s.strongestSegment(msg, buf[:0])
}

func (s *Scanner) strongestSegment(msg string, buf []float64) (best string, lead float64) {
	tx := s.classes[0]
	if tx < 0 {
		return "", 0
	}
	for seg := range Segments(msg) {
		p := s.model.Predict(seg, buf[:0])
		for _, c := range s.classes[1:] {
			if c >= 0 && p[c]-p[tx] > lead {
				best, lead = seg, p[c]-p[tx]
			}
		}
	}
	return best, lead
}

// Segments yields the parts of msg the content model also reads alone:
// with two or more paragraphs (separated by a blank line or a U+2029
// PARAGRAPH SEPARATOR), each of them; with more than one line, the last
// line (where a P.S. sits) when it is not a paragraph of its own already.
// Lines end at every break a client renders as one: LF, CR, CRLF (one
// break), VT, FF, U+0085 and U+2028, so a paragraph cannot hide behind a
// break the reader does not know. Each segment has SegmentMinWords words
// or more; a message of one line has none. At most MaxSegments: when
// more paragraphs qualify, consecutive ones are read together in
// MaxSegments (less the last line's place) runs of about equal count, so
// every paragraph is read in a part and none is read only inside the
// whole. Segments are msg's substrings, trimmed.
func Segments(msg string) iter.Seq[string] {
	return func(yield func(string) bool) {
		var q, paras, lines, lastParaLines int // qualifying paragraphs, paragraphs, lines
		lastLine := ""
		walkParagraphs(msg, func(from, to, nlines int, last string) bool {
			paras++
			lines += nlines
			lastParaLines, lastLine = nlines, last
			if wordsAtLeast(msg[from:to], SegmentMinWords) {
				q++
			}
			return true
		})
		if paras < 2 {
			q = 0 // the one paragraph is the whole message
		}
		lastLine = strings.TrimSpace(lastLine)
		ll := 0
		if lines > 1 && (paras < 2 || lastParaLines > 1) && wordsAtLeast(lastLine, SegmentMinWords) {
			ll = 1
		}
		if q > 0 {
			// The i-th qualifying paragraph goes in run i*runs/q; a run
			// is yielded when the next one starts.
			runs := min(q, MaxSegments-ll)
			i, run, runFrom, runTo := 0, 0, -1, 0
			if !walkParagraphs(msg, func(from, to, _ int, _ string) bool {
				if !wordsAtLeast(msg[from:to], SegmentMinWords) {
					return true
				}
				r := i * runs / q
				i++
				if r != run && runFrom >= 0 {
					if !yield(strings.TrimSpace(msg[runFrom:runTo])) {
						return false
					}
					runFrom = -1
				}
				if run = r; runFrom < 0 {
					runFrom = from
				}
				runTo = to
				return true
			}) {
				return
			}
			if runFrom >= 0 && !yield(strings.TrimSpace(msg[runFrom:runTo])) {
				return
			}
		}
		if ll == 1 {
			yield(lastLine)
		}
	}
}

// walkParagraphs calls fn with each paragraph of msg (a run of lines
// that are not blank, ended by a blank line, a U+2029 or the end of
// msg): its bounds in msg, its count of lines and its last line. It
// stops when fn returns false, and reports whether it went to the end.
func walkParagraphs(msg string, fn func(from, to, nlines int, last string) bool) bool {
	paraFrom, paraTo, nlines, last := -1, 0, 0, ""
	for off := 0; off <= len(msg); {
		end, brk, para := off, 0, false
		for ; end < len(msg); end++ {
			if brk, para = lineBreak(msg, end); brk > 0 {
				break
			}
		}
		if line := msg[off:end]; strings.TrimSpace(line) == "" {
			para = true
		} else {
			if paraFrom < 0 {
				paraFrom, nlines = off, 0
			}
			paraTo, last = end, line
			nlines++
		}
		if para && paraFrom >= 0 {
			if !fn(paraFrom, paraTo, nlines, last) {
				return false
			}
			paraFrom = -1
		}
		if brk == 0 {
			break // the end of msg
		}
		off = end + brk
	}
	if paraFrom >= 0 {
		return fn(paraFrom, paraTo, nlines, last)
	}
	return true
}

// lineBreak is the length in bytes of the line break at msg[i:], 0 when
// there is none, and whether it ends a paragraph too (U+2029). CRLF is one
// break.
func lineBreak(msg string, i int) (n int, para bool) {
	switch msg[i] {
	case '\n', '\v', '\f':
		return 1, false
	case '\r':
		if i+1 < len(msg) && msg[i+1] == '\n' {
			return 2, false
		}
		return 1, false
	case 0xC2: // U+0085 NEXT LINE
		if i+1 < len(msg) && msg[i+1] == 0x85 {
			return 2, false
		}
	case 0xE2: // U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR
		if i+2 < len(msg) && msg[i+1] == 0x80 && (msg[i+2] == 0xA8 || msg[i+2] == 0xA9) {
			return 3, msg[i+2] == 0xA9
		}
	}
	return 0, false
}

// wordsAtLeast reports whether s has at least n space-separated words.
func wordsAtLeast(s string, n int) bool {
	for range strings.FieldsSeq(s) {
		if n--; n <= 0 {
			return true
		}
	}
	return n <= 0
}

// Model is the scanner's content model, nil when it has none: for
// explanations (Model.Explain).
func (s *Scanner) Model() *model.Model { return s.model }

// fold is the opt-out normaliser plus accents removed (promoción and
// promocion match alike): NFD, nonspacing marks (Mn) dropped, NFC; and
// lookalike letters of mixed-script words in one script
// (optout.Lookalikes: "sаle" with a Cyrillic а matches "sale"). Every
// step is a stateless function, so fold is safe for concurrent use. (It
// was one package-level transform.Chain, whose buffers every request
// shared: concurrent Arabic messages corrupted them and panicked.)
func fold(s string) string { return foldNormalized(optout.Normalize(s)) }

// foldNormalized is fold for n, optout.Normalize's output.
func foldNormalized(n string) string {
	for i := 0; i < len(n); i++ {
		if n[i] >= 0x80 {
			return stripMarks(optout.Lookalikes(n))
		}
	}
	return n
}

// stripMarks is NFC(NFD(s) without Mn). It does not allocate when s is
// NFC and holds no mark, as Normalize's output mostly is (it already drops
// Arabic harakat).
func stripMarks(s string) string {
	d := norm.NFD.String(s) // s itself when s is already NFD
	if strings.IndexFunc(d, isMark) < 0 {
		return norm.NFC.String(s) // same as NFC(d), without allocating when s is NFC
	}
	return norm.NFC.String(strings.Map(func(r rune) rune {
		if isMark(r) {
			return -1
		}
		return r
	}, d))
}

func isMark(r rune) bool { return r >= 0x300 && unicode.Is(unicode.Mn, r) }

// scope is the sentences of a message with a settled anchor.
type scope struct {
	sentence []int  // sentence of each word; nil: the message is one sentence
	cta      []bool // by sentence: it has a call to action
}

// near reports whether a settled anchor starts within SettledWindow words
// of word w, in w's sentence or in the one before or after it when w's has
// no call to action.
func (sc scope) near(settled []int, w int) bool {
	for _, a := range settled {
		if w < a-SettledWindow || w > a+SettledWindow {
			continue
		}
		if sc.sentence == nil {
			return true
		}
		switch d := sc.sentence[w] - sc.sentence[a]; {
		case d == 0:
			return true
		case (d == 1 || d == -1) && !sc.cta[sc.sentence[w]]:
			return true
		}
	}
	return false
}

// sentences returns the sentence index of each of msg's n normalised
// words: a sentence ends at a line break (any Segments knows), "!", "?",
// "؟", "।" or "。", or
// at a "." before white space and a word that is neither a number nor in
// lower case. It returns nil when the sentences' words do
// not add up to n (normalisation joined or split words across a
// boundary): the caller then reads the message as one sentence.
// Only messages with a settled anchor take this path.
func (s *Scanner) sentences(msg string, n int) []int {
	out := make([]int, 0, n)
	k, start := 0, 0
	flush := func(end int) {
		_, _, text := s.links(msg[start:end])
		in := false
		for _, r := range fold(text) {
			if unicode.IsSpace(r) {
				in = false
			} else if !in {
				in = true
				out = append(out, k)
			}
		}
		k++
		start = end
	}
	for i, r := range msg {
		switch r {
		case '\n', '\r', '\v', '\f', '\u0085', '\u2028', '\u2029', '!', '?', '؟', '।', '。':
			flush(i + utf8.RuneLen(r))
		case '.':
			// Before white space, and not an abbreviation before a
			// number or a lower-case word ("no. 7712", "Rs. 870").
			rest := msg[i+1:]
			next := strings.TrimLeft(rest, " \t")
			if len(next) < len(rest) && next != "" {
				if r, _ := utf8.DecodeRuneInString(next); !unicode.IsDigit(r) && !unicode.IsLower(r) {
					flush(i + 1)
				}
			}
		}
	}
	flush(len(msg))
	if len(out) != n || n == 0 {
		return nil
	}
	return out
}

// denied reports whether a negation ends at most one word before word w.
func denied(negated []int, w int) bool {
	for _, n := range negated {
		if n <= w && w <= n+1 {
			return true
		}
	}
	return false
}

// evidence counts anchors followed, within span words, by a word that
// passes ok (each anchor counts once).
func evidence(words []string, after []int, span int, ok func(string) bool) int {
	n := 0
	for _, i := range after {
		for j := i; j < len(words) && j < i+span; j++ {
			if ok(words[j]) {
				n++
				break
			}
		}
	}
	return n
}

func digits(w string) (d, l int) {
	for _, r := range w {
		switch {
		case r >= '0' && r <= '9':
			d++
		case unicode.IsLetter(r):
			l++
		}
	}
	return d, l
}

// isReference: an order, invoice or ticket number: at least 3 digits.
func isReference(w string) bool { d, _ := digits(w); return d >= 3 }

// isOneTimeCode: 4 to 8 digits and nothing else.
func isOneTimeCode(w string) bool { d, l := digits(w); return l == 0 && d >= 4 && d <= 8 }

// isDiscountCode: letters and digits together, like SAVE50.
func isDiscountCode(w string) bool { d, l := digits(w); return d > 0 && l > 0 && len(w) >= 4 }

// links counts URL-looking tokens and those whose host is a shortener, and
// returns msg without them (a URL's words are not the message's words):
// its other fields, each followed by a space, or msg itself when it has no
// link (the same words; FuzzNormalizeWords).
// The message without its links is built only when it has one: most
// messages have none, and their tokens are not lower-cased (a link holds
// a "." or a ":").
func (s *Scanner) links(msg string) (links, shortened int, rest string) {
	for tok := range strings.FieldsSeq(msg) {
		if l, sh := s.link(tok); l {
			links++
			if sh {
				shortened++
			}
		}
	}
	if links == 0 {
		return 0, 0, msg
	}
	var b strings.Builder
	for tok := range strings.FieldsSeq(msg) {
		if l, _ := s.link(tok); !l {
			b.WriteString(tok)
			b.WriteByte(' ')
		}
	}
	return links, shortened, b.String()
}

// link reports whether tok is a URL and whether its host is a shortener.
func (s *Scanner) link(tok string) (link, shortener bool) {
	if !strings.ContainsAny(tok, ".:") {
		return false, false
	}
	host := strings.ToLower(strings.TrimRight(tok, ".,;:!?)"))
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	} else if !strings.HasPrefix(host, "www.") && !s.shorteners[hostOf(host)] {
		return false, false
	}
	return true, s.shorteners[hostOf(strings.TrimPrefix(host, "www."))]
}

func hostOf(s string) string {
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		return s[:i]
	}
	return s
}

func isEmoji(r rune) bool {
	return (r >= 0x1F300 && r <= 0x1FAFF) || (r >= 0x2600 && r <= 0x27BF) || (r >= 0x1F000 && r <= 0x1F2FF)
}
