package optout

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// lookInfo is what Lookalikes' stripMarks does to one rune of NFC text,
// and the script of the result.
type lookInfo uint32

const (
	lookRune lookInfo = 1<<21 - 1 // the rune with its droppable marks dropped, recomposed
	// lookOne: stripMarks of text of such runes is the text of their
	// lookRune: the rune is a starter that NFC keeps and that combines with
	// nothing before it, its canonical decomposition (if any) a starter of
	// that kind and nonspacing marks, and what is left once the marks
	// stripMarks drops are dropped composes to one rune of that kind.
	lookOne         lookInfo = 1 << 21
	lookScriptShift          = 22 // 2 bits: the script of lookRune
)

// lookPages is lookInfo's memo (runeMemo, as runePages is runeInfo's).
var lookPages runeMemo[lookInfo]

func lookOf(r rune) lookInfo { return lookPages.get(r, computeLook) }

// nfcStarter reports whether r is a starter that NFC keeps (NFC_QC=Yes,
// by x/text's quick check of it alone) and so combines with nothing
// before it.
func nfcStarter(r rune) bool {
	s := string(r)
	p := norm.NFC.PropertiesString(s)
	return p.CCC() == 0 && p.LeadCCC() == 0 && p.BoundaryBefore() && norm.NFC.QuickSpanString(s) == len(s) && norm.NFC.String(s) == s
}

func computeLook(r rune) lookInfo {
	if !utf8.ValidRune(r) || unicode.Is(unicode.Mn, r) || !nfcStarter(r) {
		return 0
	}
	d := []rune(norm.NFD.String(string(r)))
	if unicode.Is(unicode.Mn, d[0]) || !nfcStarter(d[0]) {
		return 0
	}
	var b strings.Builder
	b.WriteRune(d[0])
	for _, m := range d[1:] {
		if !unicode.Is(unicode.Mn, m) {
			return 0
		}
		if !(scriptOf(d[0]) != scriptNone && !(d[0] == 'и' && m == 0x0306)) {
			b.WriteRune(m) // kept: stripMarks drops it only after a Latin, Greek or Cyrillic letter
		}
	}
	out := norm.NFC.String(b.String())
	o, n := utf8.DecodeRuneInString(out)
	if n != len(out) || !nfcStarter(o) {
		return 0
	}
	return lookInfo(o) | lookOne | lookInfo(scriptOf(o))<<lookScriptShift
}

// lookalikesFast is Lookalikes(n) for the text most is: every rune a
// lookOne rune, and what stripMarks leaves of it in one script (or none),
// so that no word is written in another script. It returns false for any
// other text, which then takes the general path (TestLookalikesFast and
// FuzzLookalikesFast hold the two equal).
func lookalikesFast(n string) (string, bool) {
	var latin, other int
	changed := false
	for _, r := range n {
		e := lookOf(r)
		if e&lookOne == 0 {
			return "", false
		}
		switch script(e >> lookScriptShift & 3) {
		case scriptLatin:
			latin++
		case scriptCyrillic, scriptGreek:
			other++
		}
		changed = changed || rune(e&lookRune) != r
	}
	if latin > 0 && other > 0 {
		return "", false
	}
	if !changed {
		return n, true
	}
	var b strings.Builder
	b.Grow(len(n))
	for _, r := range n {
		b.WriteRune(rune(lookOf(r) & lookRune))
	}
	return b.String(), true
}
