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
	"math"
	"slices"
	"strings"
	"unicode"

	ahocorasick "github.com/BobuSumisu/aho-corasick"
	"golang.org/x/text/unicode/norm"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/optout"
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
}

// ModelStep is the granularity of the model signals, in percent.
const ModelStep = 5

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
}

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
	}
}

// Options configure a Scanner. The zero value uses the built-in lists.
type Options struct {
	Vocabulary *Vocabulary // nil: DefaultVocabulary()
	Shorteners []string    // host names, lower case; nil: DefaultShorteners
	// Model is the outbound content model (model.Embedded(model.Outbound)
	// for the shipped one); nil: no model signals, all 0.
	Model *model.Model
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
	nCategories
)

// Scanner computes Signals.
type Scanner struct {
	trie       *ahocorasick.Trie
	patterns   []pattern // by pattern index
	shorteners map[string]bool
	model      *model.Model
	classes    [5]int // index in the model's probabilities of each model signal, -1 when absent
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
	lists := [nCategories][]string{v.Promo, v.CallToAction, v.Prize, v.ColdOutreach, v.Political, v.TransactionalAnchor, v.CodeAnchor, v.DiscountAnchor}
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
			s.patterns[i].cats = append(s.patterns[i].cats, category(c))
		}
	}
	s.trie = ahocorasick.NewTrieBuilder().AddStrings(strs).Build()
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

// Scan computes the signals of msg.
func (s *Scanner) Scan(msg string) Signals {
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
	words := strings.Fields(norm)
	// Word start offsets, ascending, to turn byte matches into word
	// positions (norm has single spaces between words).
	starts := make([]int, len(words))
	off := 0
	for i, w := range words {
		starts[i] = off
		off += len(w) + 1
	}
	var anchors [nCategories][]int // word index just after each anchor match
	for _, m := range s.trie.MatchString(norm) {
		start, end := int(m.Pos()), int(m.Pos())+len(m.Match())
		if start > 0 && norm[start-1] != ' ' || end < len(norm) && norm[end] != ' ' {
			continue // not on word boundaries
		}
		p := s.patterns[m.Pattern()]
		for _, c := range p.cats {
			switch c {
			case catPromo:
				sig.PromoTerms++
			case catCTA:
				sig.CallsToAction++
			case catPrize:
				sig.PrizeClaims++
			case catCold:
				sig.ColdOutreach++
			case catPolitical:
				sig.Political++
			default:
				w, _ := slices.BinarySearch(starts, start) // start is on a word boundary
				anchors[c] = append(anchors[c], w+p.words)
			}
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
	}
	return sig
}

// Model is the scanner's content model, nil when it has none: for
// explanations (Model.Explain).
func (s *Scanner) Model() *model.Model { return s.model }

// fold is the opt-out normaliser plus accents removed (promoción and
// promocion match alike): NFD, nonspacing marks (Mn) dropped, NFC. Every
// step is a stateless function, so fold is safe for concurrent use. (It
// was one package-level transform.Chain, whose buffers every request
// shared: concurrent Arabic messages corrupted them and panicked.)
func fold(s string) string { return foldNormalized(optout.Normalize(s)) }

// foldNormalized is fold for n, optout.Normalize's output.
func foldNormalized(n string) string {
	for i := 0; i < len(n); i++ {
		if n[i] >= 0x80 {
			return stripMarks(n)
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
// returns msg without them (a URL's words are not the message's words).
func (s *Scanner) links(msg string) (links, shortened int, rest string) {
	var b strings.Builder
	for _, tok := range strings.Fields(msg) {
		host := strings.ToLower(strings.TrimRight(tok, ".,;:!?)"))
		if i := strings.Index(host, "://"); i >= 0 {
			host = host[i+3:]
		} else if !strings.HasPrefix(host, "www.") && !s.shorteners[hostOf(host)] {
			b.WriteString(tok)
			b.WriteByte(' ')
			continue
		}
		links++
		if s.shorteners[hostOf(strings.TrimPrefix(host, "www."))] {
			shortened++
		}
	}
	return links, shortened, b.String()
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
