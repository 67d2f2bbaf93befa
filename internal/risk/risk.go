// Package risk computes content signals of an outbound message natively in
// Go, once per request, for the Rego risk policy to weigh. It judges
// nothing itself: weights and thresholds are Rego data.
//
// A Scanner is immutable after New and safe for concurrent use.
package risk

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Signals are counts and ratios over one message.
type Signals struct {
	PromoTerms     int // promotional words and phrases
	ShortenerLinks int // links through a URL shortener
	Links          int // links of any kind
	CapsRatioPct   int // upper-case letters among letters, in percent (0 below 12 letters)
	Exclamations   int
	Emoji          int
	Length         int // in runes
}

// Options list the vocabulary. The zero value uses the built-in lists.
type Options struct {
	PromoTerms []string // lower case; matched on word boundaries
	Shorteners []string // host names, lower case
}

// DefaultPromoTerms is a first promotional vocabulary (English, Arabic,
// Spanish, French); platform teams extend it in config.
var DefaultPromoTerms = []string{
	"win", "winner", "won", "free", "prize", "discount", "% off", "off everything", "sale",
	"limited time", "today only", "act now", "buy now", "shop now", "order now", "deal", "deals",
	"offer", "promo", "coupon", "use code", "cashback", "click here", "subscribe", "exclusive",
	"خصم", "عرض", "مجانا", "تخفيض", "اربح", "descuento", "oferta", "gratis", "promoción",
	"réduction", "soldes", "offre", "gratuit",
}

// DefaultShorteners are common URL shortener hosts.
var DefaultShorteners = []string{
	"bit.ly", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "cutt.ly",
	"rebrand.ly", "shorturl.at", "rb.gy", "t.ly", "tiny.cc", "s.id", "lnkd.in", "wa.link",
}

// Scanner computes Signals.
type Scanner struct {
	promo      []string
	shorteners []string
}

// New returns a Scanner over opts' vocabulary.
func New(opts Options) *Scanner {
	s := &Scanner{promo: opts.PromoTerms, shorteners: opts.Shorteners}
	if s.promo == nil {
		s.promo = DefaultPromoTerms
	}
	if s.shorteners == nil {
		s.shorteners = DefaultShorteners
	}
	return s
}

// Scan computes the signals of msg. It does not allocate for ASCII-only or
// already lower-case text beyond one lower-cased copy.
func (s *Scanner) Scan(msg string) Signals {
	var sig Signals
	letters, upper := 0, 0
	for _, r := range msg {
		sig.Length++
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
	lower := strings.ToLower(msg)
	for _, term := range s.promo {
		sig.PromoTerms += countWord(lower, term)
	}
	sig.Links, sig.ShortenerLinks = s.links(lower)
	return sig
}

// links counts URL-looking tokens and those whose host is a shortener.
func (s *Scanner) links(lower string) (links, shortened int) {
	for _, tok := range strings.Fields(lower) {
		tok = strings.TrimRight(tok, ".,;:!?)")
		host := tok
		if i := strings.Index(host, "://"); i >= 0 {
			host = host[i+3:]
		} else if !strings.HasPrefix(host, "www.") && !s.isShortener(hostOf(host)) {
			continue
		}
		links++
		if s.isShortener(hostOf(strings.TrimPrefix(host, "www."))) {
			shortened++
		}
	}
	return links, shortened
}

func hostOf(s string) string {
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		return s[:i]
	}
	return s
}

func (s *Scanner) isShortener(host string) bool {
	for _, h := range s.shorteners {
		if host == h {
			return true
		}
	}
	return false
}

// countWord counts occurrences of term in text that start and end on word
// boundaries, so "win" does not match "window".
func countWord(text, term string) int {
	n := 0
	for i := 0; ; {
		j := strings.Index(text[i:], term)
		if j < 0 {
			return n
		}
		start, end := i+j, i+j+len(term)
		if boundaryBefore(text, start) && boundaryAfter(text, end) {
			n++
		}
		i = start + 1
	}
}

func boundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !isWordRune(r)
}

func boundaryAfter(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return !isWordRune(r)
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func isEmoji(r rune) bool {
	return (r >= 0x1F300 && r <= 0x1FAFF) || (r >= 0x2600 && r <= 0x27BF) || (r >= 0x1F000 && r <= 0x1F2FF)
}
