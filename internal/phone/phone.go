// Package phone normalises recipient numbers to E.164 with
// github.com/nyaruka/phonenumbers, so that "+966 50 123 4567",
// "00966501234567" and the same number in Arabic-Indic digits name one
// recipient. A Normalizer caches results (parsing is the costly part of a
// decision) and is safe for concurrent use.
package phone

import (
	"strings"
	"unicode"

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
		if r > '9' && unicode.IsDigit(r) {
			// Unicode lays decimal digits out in runs of ten from zero.
			r = '0' + digitValue(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func digitValue(r rune) rune {
	for z := r; z >= r-9; z-- {
		if !unicode.IsDigit(z - 1) {
			return r - z
		}
	}
	return 0
}
