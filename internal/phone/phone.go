// Package phone normalises recipient numbers to E.164 with
// github.com/nyaruka/phonenumbers, so that "+966 50 123 4567",
// "00966501234567" and the same number in Arabic-Indic digits name one
// recipient. A Normalizer caches results (parsing is the costly part of a
// decision) and is safe for concurrent use.
package phone

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/nyaruka/phonenumbers"
)

// Normalizer turns user input into E.164.
type Normalizer struct {
	region string // default region for national-format numbers; "" = international only
	cache  *ristretto.Cache[string, string]
}

// Options configure a Normalizer. The zero value accepts international
// numbers only and caches 100,000 results.
type Options struct {
	DefaultRegion string // ISO 3166 alpha-2, e.g. "SA"
	CacheSize     int64  // results kept; <0 disables the cache
}

// New returns a Normalizer.
func New(opts Options) (*Normalizer, error) {
	n := &Normalizer{region: strings.ToUpper(opts.DefaultRegion)}
	if opts.CacheSize >= 0 {
		size := opts.CacheSize
		if size == 0 {
			size = 100_000
		}
		c, err := ristretto.NewCache(&ristretto.Config[string, string]{
			NumCounters: size * 10,
			MaxCost:     size,
			BufferItems: 64,
		})
		if err != nil {
			return nil, err
		}
		n.cache = c
	}
	return n, nil
}

// Close releases the cache's goroutines.
func (n *Normalizer) Close() {
	if n.cache != nil {
		n.cache.Close()
	}
}

// invalid is cached for numbers that do not parse, so that a client
// hammering with garbage costs a lookup, not a parse.
const invalid = "\x00"

// E164 returns raw as an E.164 number ("+9665…") and whether it is a valid
// number. Input may use spaces, dashes, dots, parentheses, a leading "00"
// instead of "+", and any Unicode decimal digits.
func (n *Normalizer) E164(raw string) (string, bool) {
	if len(raw) == 0 || len(raw) > 64 {
		return "", false
	}
	if n.cache != nil {
		if v, ok := n.cache.Get(raw); ok {
			if v == invalid {
				return "", false
			}
			return v, true
		}
	}
	v, ok := n.parse(raw)
	if n.cache != nil {
		if ok {
			n.cache.Set(raw, v, 1)
		} else {
			n.cache.Set(raw, invalid, 1)
		}
	}
	return v, ok
}

func (n *Normalizer) parse(raw string) (string, bool) {
	s := asciiDigits(strings.TrimSpace(raw))
	if v, ok := fastE164(s); ok {
		return v, true
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	num, err := phonenumbers.Parse(s, n.region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return phonenumbers.Format(num, phonenumbers.E164), true
}

// asciiDigits maps every Unicode decimal digit (Arabic-Indic, Persian, …)
// to its ASCII digit.
func asciiDigits(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r > '9' {
			if v, ok := digitValue(r); ok {
				r = '0' + v
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// digitValue returns the value of the Unicode decimal digit r (general
// category Nd). Unicode encodes every decimal digit set as a run of ten
// from zero, and the Nd table merges adjacent runs (the five mathematical
// digit sets at U+1D7CE are one range of fifty), so the value is the
// offset into its range modulo ten.
func digitValue(r rune) (rune, bool) {
	if r >= '0' && r <= '9' {
		return r - '0', true
	}
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return (r - rune(rg.Lo)) % 10, rg.Stride == 1
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return (r - rune(rg.Lo)) % 10, rg.Stride == 1
		}
	}
	return 0, false
}

// Plain reports whether raw is a plain phone string, the only kind the
// send path accepts: an optional leading "+" (or "00", which is digits),
// decimal digits all of one script (ASCII, or one Unicode set such as
// Arabic-Indic "٠١٢…"), and no other characters than the separators space,
// "-", ".", "(" and ")". Anything else is not plain: letters (vanity numbers
// such as 1-800-FLOWERS, "ext." and "x123" extensions), ";ext=", "tel:",
// "#" and "*", bidi and zero-width marks, no-break spaces, control
// characters. libphonenumber reads many of those (it maps letters to
// digits and drops extensions), and a sender may read them otherwise, so a
// number that is not plain is refused rather than guessed at.
func Plain(raw string) bool {
	var zero rune = -1 // the zero of the digits' script, once one is seen
	plus := true       // a "+" may still come
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c >= '0' && c <= '9':
				if zero >= 0 && zero != '0' {
					return false
				}
				zero, plus = '0', false
			case c == ' ':
			case c == '+' && plus:
				plus = false
			case c == '-' || c == '.' || c == '(' || c == ')':
				plus = false
			default:
				return false
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(raw[i:])
		i += n
		v, ok := digitValue(r)
		if !ok || r == utf8.RuneError {
			return false
		}
		if zero >= 0 && zero != r-v {
			return false
		}
		zero, plus = r-v, false
	}
	return zero >= 0
}
