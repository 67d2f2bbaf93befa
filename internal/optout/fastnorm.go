package optout

import (
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// runeInfo is what pass does to one rune of text that NFKC leaves as it
// is: its case folding's single rune g mapped by fold, with flags.
type runeInfo uint32

const (
	infoRune runeInfo = 1<<21 - 1 // g; 0: pass drops the rune
	infoOne  runeInfo = 1 << 21   // the rune case-folds to one rune (else appendFast gives up)
	infoWord runeInfo = 1 << 22   // isWord(g)
	infoApos runeInfo = 1 << 23   // g is an apostrophe
	// infoFixed: g is a word rune that case folding and fold leave as it
	// is, so pass keeps it: text of such runes and single spaces is pass's
	// fixed point when it is also NFKC.
	infoFixed runeInfo = 1 << 24
	// infoInert: the rune is a starter NFKC leaves as it is, which combines
	// with nothing before it: text of such runes is NFKC, with no need to
	// ask x/text. infoInertG: the same of g.
	infoInert  runeInfo = 1 << 25
	infoInertG runeInfo = 1 << 26
)

// runePages memoises runeInfo by pages of 256 runes, each computed on
// first use from x/text's case folding and fold: a pure function of the
// rune, so goroutines that compute a page at once store equal values, and
// any one of them serves. It holds no other state.
var runePages [(unicode.MaxRune + 1) >> 8]atomic.Pointer[[256]runeInfo]

func infoOf(r rune) runeInfo {
	if p := runePages[r>>8].Load(); p != nil {
		return p[r&0xff]
	}
	return buildPage(r >> 8)[r&0xff]
}

func buildPage(page rune) *[256]runeInfo {
	var p [256]runeInfo
	for i := range p {
		p[i] = computeInfo(page<<8 | rune(i))
	}
	runePages[page].Store(&p)
	return &p
}

func computeInfo(r rune) runeInfo {
	if !utf8.ValidRune(r) {
		return 0
	}
	var e runeInfo
	if inert(r) {
		e |= infoInert
	}
	f := cases.Fold().String(string(r))
	fr, n := utf8.DecodeRuneInString(f)
	if n != len(f) || fr == utf8.RuneError && r != utf8.RuneError {
		return 0
	}
	g := fold(fr)
	e |= runeInfo(g) | infoOne
	if inert(g) {
		e |= infoInertG
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

// inert reports whether r is a starter that NFKC leaves as it is and that
// combines with no rune before it (x/text's "boundary before"), so that
// any text of such runes is NFKC.
func inert(r rune) bool {
	var b [utf8.UTFMax]byte
	s := utf8.AppendRune(b[:0], r)
	p := norm.NFKC.Properties(s)
	return p.BoundaryBefore() && p.CCC() == 0 && p.LeadCCC() == 0 && p.TrailCCC() == 0 && norm.NFKC.String(string(s)) == string(s)
}

// appendFast appends normalize(s) to dst in one pass, for the text most
// messages are: valid UTF-8 that NFKC leaves as it is (every rune inert,
// or else x/text's check), each rune case-folding to one rune, and an outcome that a second
// pass would leave as it is (every rune written infoFixed, the whole NFKC),
// so that normalize would stop after one pass with this result. It
// returns dst unchanged and false for any other text, which then takes
// normalize (TestAppendFast and FuzzAppendFast hold the two equal).
func appendFast(dst []byte, s string) ([]byte, bool) {
	start, space, prevWord := len(dst), true, false
	inertIn, inertOut := infoInert, infoInertG
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
		inertIn &= e
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
			}
			continue
		}
		if e&infoFixed == 0 {
			return dst[:start], false
		}
		inertOut &= e
		dst = utf8.AppendRune(dst, g)
		space = false
	}
	if n := len(dst); n > start && dst[n-1] == ' ' {
		dst = dst[:n-1]
	}
	if inertIn == 0 && !norm.NFKC.IsNormalString(s) || inertOut == 0 && !norm.NFKC.IsNormal(dst[start:]) {
		return dst[:start], false
	}
	return dst, true
}
