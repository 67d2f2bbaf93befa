package optout

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Lookalikes folds, in n (Normalize's output), what makes a word read as
// another to a person but not to a byte comparison, the spellings a sender
// uses to slip an ad past a detector:
//   - marks on Latin, Greek and Cyrillic letters are dropped ("promoción"
//     reads as "promocion", "s̈ȁl̃ë" as "sale"), except the breve of Cyrillic
//     й, a letter of its own;
//   - in a word that mixes Latin with Cyrillic or Greek letters, the
//     lookalike letters are written in the word's own script: the script
//     of its letters that have no lookalike in the other ("ѕаvе": v is
//     only Latin, so "save"; "скидкa": д is only Cyrillic, so "скидка"),
//     else the majority's (a tie goes to Latin);
//   - in a text whose Latin letters outnumber its Cyrillic and Greek ones,
//     a Cyrillic or Greek word made only of Latin lookalikes ("ѕаӏе") is
//     written in Latin.
//
// Other scripts (Arabic, Devanagari, Bengali, Tamil, Malayalam …) are
// untouched, their marks included. It is idempotent, safe for concurrent
// use, and returns n itself, without allocating, when n has no letter or
// mark it could fold (ASCII, Arabic, Hindi).
func Lookalikes(n string) string {
	if !foldable(n) {
		return n
	}
	if s, ok := lookalikesFast(n); ok {
		return s
	}
	return lookalikesGeneral(n)
}

// lookalikesGeneral is Lookalikes for any text.
func lookalikesGeneral(n string) string {
	// Writing a word in its majority script can move the text's balance,
	// so run to a fixed point (one more pass at most, in practice).
	s := lookalikes(stripMarks(n))
	for range 4 {
		next := lookalikes(s)
		if next == s {
			break
		}
		s = next
	}
	return s
}

func lookalikes(s string) string {
	var latin, other int // letters of the whole text
	for _, r := range s {
		switch scriptOf(r) {
		case scriptLatin:
			latin++
		case scriptCyrillic, scriptGreek:
			other++
		}
	}
	if other == 0 || latin == 0 {
		return s // one script or none: no word mixes them, none to write in Latin
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], ' ')
		if j < 0 {
			j = len(s)
		} else {
			j += i
		}
		writeWord(&b, s[i:j], latin > other)
		if j < len(s) {
			b.WriteByte(' ')
		}
		i = j + 1
	}
	return b.String()
}

// foldable reports whether s holds a rune Lookalikes may change: a Latin,
// Greek or Cyrillic letter beyond ASCII, or a combining mark of the
// blocks that serve those scripts.
func foldable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			continue
		}
		r, sz := utf8.DecodeRuneInString(s[i:])
		switch {
		case r < 0x530, // Latin-1 to Latin Extended-B, IPA, combining marks, Greek, Cyrillic
			r >= 0x1AB0 && r <= 0x1AFF, r >= 0x1C80 && r <= 0x1C8F, r >= 0x1D00 && r <= 0x1FFF,
			r >= 0x20D0 && r <= 0x20FF, r >= 0x2C60 && r <= 0x2C7F, r >= 0x2DE0 && r <= 0x2DFF,
			r >= 0xA640 && r <= 0xA69F, r >= 0xA720 && r <= 0xA7FF, r >= 0xFE20 && r <= 0xFE2F:
			return true
		}
		i += sz - 1
	}
	return false
}

// stripMarks drops the nonspacing marks on Latin, Greek and Cyrillic
// letters (but й's breve) and recomposes: NFC of NFD without them.
func stripMarks(s string) string {
	d := norm.NFD.String(s)
	dropped := func(base, r rune) bool {
		return unicode.Is(unicode.Mn, r) && scriptOf(base) != scriptNone && !(base == 'и' && r == 0x0306)
	}
	base, found := rune(-1), false
	for _, r := range d {
		if found = dropped(base, r); found {
			break
		}
		if !unicode.Is(unicode.Mn, r) {
			base = r
		}
	}
	if !found {
		return norm.NFC.String(s) // s itself when it is NFC, as Normalize's output is
	}
	var b strings.Builder
	b.Grow(len(d))
	base = -1
	for _, r := range d {
		if dropped(base, r) {
			continue
		}
		if !unicode.Is(unicode.Mn, r) {
			base = r
		}
		b.WriteRune(r)
	}
	return norm.NFC.String(b.String())
}

// writeWord writes w to b with its lookalike letters in its own script:
// the script of its letters that have no lookalike in the other ("ѕаvе":
// v is only Latin), else its majority script (a tie goes to Latin).
// toLatin writes a Cyrillic or Greek word of lookalikes only in Latin.
func writeWord(b *strings.Builder, w string, toLatin bool) {
	var latin, other, latinOnly, otherOnly int
	for _, r := range w {
		switch scriptOf(r) {
		case scriptLatin:
			latin++
			if _, ok := toCyrillicLetter[r]; !ok {
				latinOnly++
			}
		case scriptCyrillic, scriptGreek:
			other++
			if _, ok := toLatinLetter[r]; !ok {
				otherOnly++
			}
		}
	}
	mixed := latin > 0 && other > 0
	switch {
	case mixed && latinOnly > 0 && otherOnly == 0,
		mixed && (latinOnly > 0) == (otherOnly > 0) && latin >= other,
		latin == 0 && other > 0 && otherOnly == 0 && toLatin:
		for _, r := range w {
			if l, ok := toLatinLetter[r]; ok {
				r = l
			}
			b.WriteRune(r)
		}
	case mixed:
		for _, r := range w {
			if c, ok := toCyrillicLetter[r]; ok {
				r = c
			}
			b.WriteRune(r)
		}
	default:
		b.WriteString(w)
	}
}

type script uint8

const (
	scriptNone script = iota
	scriptLatin
	scriptGreek
	scriptCyrillic
)

func scriptOf(r rune) script {
	switch {
	case r < 'A':
		return scriptNone
	case unicode.Is(unicode.Latin, r):
		return scriptLatin
	case unicode.Is(unicode.Cyrillic, r):
		return scriptCyrillic
	case unicode.Is(unicode.Greek, r):
		return scriptGreek
	}
	return scriptNone
}

// toLatinLetter maps the case-folded Cyrillic and Greek letters that look
// like a Latin letter (in lower or upper case, since Normalize folded the
// case) to it.
var toLatinLetter = map[rune]rune{
	'а': 'a', 'в': 'b', 'е': 'e', 'і': 'i', 'ј': 'j', 'к': 'k', 'м': 'm', 'н': 'h',
	'о': 'o', 'р': 'p', 'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ѕ': 's', 'һ': 'h',
	'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l', 'ү': 'y',
	'α': 'a', 'β': 'b', 'ε': 'e', 'ζ': 'z', 'η': 'n', 'ι': 'i', 'κ': 'k', 'ν': 'v',
	'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x', 'γ': 'y', 'ω': 'w',
}

// toCyrillicLetter maps the Latin letters that look like a Cyrillic one
// to it, for a word written mostly in Cyrillic.
var toCyrillicLetter = map[rune]rune{
	'a': 'а', 'b': 'в', 'c': 'с', 'e': 'е', 'h': 'н', 'i': 'і', 'k': 'к', 'm': 'м',
	'o': 'о', 'p': 'р', 't': 'т', 'x': 'х', 'y': 'у',
}
