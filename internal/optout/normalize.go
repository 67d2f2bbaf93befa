package optout

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Normalize prepares text for matching: Unicode NFKC; format characters
// (zero-width, bidi marks, BOM) dropped; Arabic tatweel and diacritics
// dropped; alef and hamza forms, alef maqsura and ta marbuta folded;
// Arabic-Indic and Persian digits made ASCII; case folded (Turkish İ as i); punctuation,
// symbols and emoji made spaces (an apostrophe inside a word is dropped:
// "don't" is "dont"); spaces collapsed and trimmed. It is idempotent and
// never panics; invalid UTF-8 becomes U+FFFD, which is then a space.
func Normalize(s string) string {
	if isASCII(s) {
		return string(appendASCII(make([]byte, 0, len(s)), s))
	}
	if b, ok := appendFast(make([]byte, 0, len(s)), s); ok {
		return string(b)
	}
	return normalize(s)
}

// AppendNormalized appends Normalize(s) to dst. ASCII text takes a single
// pass that allocates nothing beyond dst (TestNormalizeASCII and
// FuzzNormalizeASCII hold it equal to the general path), as does most
// other text, Arabic, Hindi, Cyrillic or accented Latin alike (appendFast;
// TestAppendFast and FuzzAppendFast hold it equal).
func AppendNormalized(dst []byte, s string) []byte {
	if isASCII(s) {
		return appendASCII(dst, s)
	}
	if d, ok := appendFast(dst, s); ok {
		return d
	}
	return append(dst, normalize(s)...)
}

// normalize is Normalize's general path, for any text.
func normalize(s string) string {
	// The steps do not always commute (case folding can undo NFKC, dropping
	// a mark can reorder others), so run them to a fixed point. A rare
	// two-cycle settles on the smaller of its two strings, which keeps
	// Normalize idempotent.
	prev, cur := "", pass(s)
	for range 8 {
		next := pass(cur)
		if next == cur {
			return cur
		}
		if next == prev {
			return min(cur, next)
		}
		prev, cur = cur, next
	}
	return cur
}

func pass(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = norm.NFKC.String(s)
	// A Caser is stateful and not safe for concurrent use: a fresh one per
	// call. cases.Fold() is a pointer to an empty struct, so this does not
	// allocate (BenchmarkNormalize).
	s = cases.Fold().String(s)
	var b strings.Builder
	b.Grow(len(s))
	space := true // at the start: drop leading spaces
	runes := []rune(s)
	for i, r := range runes {
		r = fold(r)
		switch {
		case r == 0:
			continue
		case r == '\'' || r == '’' || r == 'ʼ':
			// Inside a word, an apostrophe joins: don't → dont.
			if i > 0 && i+1 < len(runes) && isWord(fold(runes[i-1])) && isWord(fold(runes[i+1])) {
				continue
			}
			r = ' '
		case !isWord(r):
			r = ' '
		}
		if r == ' ' {
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return strings.TrimRight(b.String(), " ")
}

func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)
}

// fold maps one rune; 0 drops it.
func fold(r rune) rune {
	switch {
	case unicode.Is(unicode.Cf, r): // zero-width, bidi marks, BOM
		return 0
	case r == 'ـ': // tatweel
		return 0
	case r == 0x0307: // combining dot above: Turkish İ folds to i + U+0307
		return 0
	case r >= 0x064B && r <= 0x065F, r == 0x0670, r >= 0x06D6 && r <= 0x06ED: // harakat, dagger alef, Quranic marks
		return 0
	case r == 'آ' || r == 'أ' || r == 'إ' || r == 'ٱ':
		return 'ا'
	case r == 'ı': // Turkish dotless i: "ÇIK" folds to "çik", so "çık" must too
		return 'i'
	case r == 'ى':
		return 'ي'
	case r == 'ة':
		return 'ه'
	case r == 'ؤ':
		return 'و'
	case r == 'ئ':
		return 'ي'
	case r >= '٠' && r <= '٩':
		return '0' + (r - '٠')
	case r >= '۰' && r <= '۹':
		return '0' + (r - '۰')
	}
	return r
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendASCII appends the general path's result for an ASCII s: letters
// lower case, digits kept, an apostrophe between two of them dropped, NUL
// dropped, anything else a space, spaces collapsed and trimmed.
func appendASCII(dst []byte, s string) []byte {
	word := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	start, space := len(dst), true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0:
			continue
		case c == '\'':
			if i > 0 && i+1 < len(s) && word(s[i-1]) && word(s[i+1]) {
				continue
			}
			c = ' '
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case !word(c):
			c = ' '
		}
		if c == ' ' {
			if !space {
				dst = append(dst, ' ')
				space = true
			}
			continue
		}
		dst = append(dst, c)
		space = false
	}
	if n := len(dst); n > start && dst[n-1] == ' ' {
		dst = dst[:n-1]
	}
	return dst
}
