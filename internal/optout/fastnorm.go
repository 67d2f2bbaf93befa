package optout

import (
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// runeInfo is what pass does to one rune of text that NFKC leaves as it
// is: its case folding's single rune g mapped by fold, with flags.
type runeInfo uint64

const (
	infoRune runeInfo = 1<<21 - 1 // g; 0: pass drops the rune
	infoOne  runeInfo = 1 << 21   // the rune case-folds to one rune (else appendFast gives up)
	infoWord runeInfo = 1 << 22   // isWord(g)
	infoApos runeInfo = 1 << 23   // g is an apostrophe
	// infoFixed: g is a word rune that case folding and fold leave as it
	// is, so pass keeps it: text of such runes and single spaces is pass's
	// fixed point when it is also NFKC.
	infoFixed runeInfo = 1 << 24
	// infoYes: the rune is NFKC_QC=Yes (x/text's quick check of it alone),
	// its combining class in bits 32-39. Text of such runes in canonical
	// order is NFKC (UAX #15's quick check), with no need to ask x/text.
	// infoYesG and bits 40-47: the same of g.
	infoYes  runeInfo = 1 << 25
	infoYesG runeInfo = 1 << 26
)

func (e runeInfo) ccc() uint8  { return uint8(e >> 32) }
func (e runeInfo) cccG() uint8 { return uint8(e >> 40) }

// nfkcCheck follows UAX #15's quick check over runes: yes while every
// rune is NFKC_QC=Yes and the combining classes of each run of non-starters
// do not decrease; runs of more than 3 non-starters it leaves to x/text
// (which counts them for the stream-safe format).
type nfkcCheck struct {
	yes       bool
	lastCC    uint8
	nonStarts int
}

func (c *nfkcCheck) next(qcYes bool, cc uint8) {
	if !qcYes {
		c.yes = false
	}
	if cc == 0 {
		c.lastCC, c.nonStarts = 0, 0
		return
	}
	if c.lastCC > cc {
		c.yes = false
	}
	c.lastCC = cc
	if c.nonStarts++; c.nonStarts > 3 {
		c.yes = false
	}
}

// runeMemo memoises a pure function of the rune by pages of 256 runes,
// each computed on first use (a few hundred microseconds for runeInfo,
// from x/text's case folding and fold) and published with an atomic
// pointer: goroutines that compute a page at once store equal values, and
// any one of them serves. It holds no other state. The runes from
// memoRunes on (rare CJK, tags, private use) have no memo: get gives the
// zero value, and text with them takes the general path.
type runeMemo[T any] [memoRunes >> 8]atomic.Pointer[[256]T]

func (m *runeMemo[T]) get(r rune, compute func(rune) T) T {
	if r >= memoRunes {
		var zero T
		return zero
	}
	if p := m[r>>8].Load(); p != nil {
		return p[r&0xff]
	}
	var p [256]T
	for i := range p {
		p[i] = compute(r&^0xff | rune(i))
	}
	m[r>>8].Store(&p)
	return p[r&0xff]
}

// memoRunes: the fast paths' memos cover the runes below it, the Basic
// Multilingual Plane and the Supplementary one (emoji, mathematical
// letters).
const memoRunes = 0x20000

// runePages is runeInfo's memo (at most 1 MB).
var runePages runeMemo[runeInfo]

func infoOf(r rune) runeInfo { return runePages.get(r, computeInfo) }

func computeInfo(r rune) runeInfo {
	if !utf8.ValidRune(r) {
		return 0
	}
	var e runeInfo
	if yes, cc := nfkcYes(r); yes {
		e |= infoYes | runeInfo(cc)<<32
	}
	f := cases.Fold().String(string(r))
	fr, n := utf8.DecodeRuneInString(f)
	if n != len(f) || fr == utf8.RuneError && r != utf8.RuneError {
		return 0
	}
	g := fold(fr)
	e |= runeInfo(g) | infoOne
	if yes, cc := nfkcYes(g); yes {
		e |= infoYesG | runeInfo(cc)<<40
	}
	apos := g == '\'' || g == '’' || g == 'ʼ'
	if isWord(g) {
		e |= infoWord
	}
	if apos {
		e |= infoApos
	}
	if g != 0 && isWord(g) && !apos && fold(g) == g && cases.Fold().String(string(g)) == string(g) {
		e |= infoFixed
	}
	return e
}

// nfkcYes reports whether r is NFKC_QC=Yes, by x/text's quick check of it
// alone (a rune that may combine with one before it is not), and its
// canonical combining class; false for a rune whose decomposition starts
// with another class than its own.
func nfkcYes(r rune) (bool, uint8) {
	s := string(r)
	p := norm.NFKC.PropertiesString(s)
	if p.CCC() != p.LeadCCC() || norm.NFKC.QuickSpanString(s) != len(s) || norm.NFKC.String(s) != s {
		return false, 0
	}
	return true, p.CCC()
}

// appendFast appends normalize(s) to dst in one pass, for the text most
// messages are: valid UTF-8 that NFKC leaves as it is (UAX #15's quick
// check over the runes, or else x/text's), each rune case-folding to one
// rune, and an outcome that a second pass would leave as it is (every
// rune written infoFixed, the whole NFKC), so that normalize would stop
// after one pass with this result. It returns dst unchanged and false for
// any other text, which then takes normalize (TestAppendFast and
// FuzzAppendFast hold the two equal).
func appendFast(dst []byte, s string) ([]byte, bool) {
	start, space, prevWord := len(dst), true, false
	in, out := nfkcCheck{yes: true}, nfkcCheck{yes: true}
	for i := 0; i < len(s); {
		r, sz := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, sz = utf8.DecodeRuneInString(s[i:])
		}
		i += sz
		e := infoOf(r)
		if e&infoOne == 0 || sz == 1 && r == utf8.RuneError { // invalid UTF-8: normalize
			return dst[:start], false
		}
		in.next(e&infoYes != 0, e.ccc())
		g := rune(e & infoRune)
		word := e&infoWord != 0
		switch {
		case g == 0:
			prevWord = word
			continue
		case e&infoApos != 0:
			// Inside a word, an apostrophe joins: don't → dont.
			if prevWord && i < len(s) {
				next, _ := utf8.DecodeRuneInString(s[i:])
				if infoOf(next)&infoWord != 0 {
					prevWord = word
					continue
				}
			}
			g = ' '
		case !word:
			g = ' '
		}
		prevWord = word
		if g == ' ' {
			if !space {
				dst = append(dst, ' ')
				space = true
				out.next(true, 0)
			}
			continue
		}
		if e&infoFixed == 0 {
			return dst[:start], false
		}
		out.next(e&infoYesG != 0, e.cccG())
		dst = utf8.AppendRune(dst, g)
		space = false
	}
	if n := len(dst); n > start && dst[n-1] == ' ' {
		dst = dst[:n-1]
	}
	if !in.yes && !norm.NFKC.IsNormalString(s) || !out.yes && !norm.NFKC.IsNormal(dst[start:]) {
		return dst[:start], false
	}
	return dst, true
}
