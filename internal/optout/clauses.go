package optout

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// sentenceEnds end a clause: sentence punctuation in the scripts the
// corpus covers, and every line break a client renders (LF, CR, VT, FF,
// U+0085, U+2028, U+2029), so a request on a line of its own is a clause
// whichever break precedes it.
const sentenceEnds = ".!?;\n\r\v\f\u0085\u2028\u2029…。？！؟؛।॥"

// buts are the words for "but" that start a new clause after a comma
// ("thanks for the delivery, but no more offers"), in the corpus's
// languages.
var buts = map[string]bool{
	"but": true, "however": true, "pero": true, "mas": true, "mais": true, "aber": true, "но": true,
	"ama": true, "fakat": true, "tapi": true, "tetapi": true, "لكن": true, "بس": true,
	"ولكن": true, "लेकिन": true, "पर": true, "मगर": true, "مگر": true, "لیکن": true, "اما": true,
	"kintu": true, "কিন্তু": true, "ஆனால்": true, "പക്ഷേ": true, "तर": true, "lekin": true, "magar": true,
}

// Clauses splits a message into the clauses Classify scores one by one:
// at sentence punctuation and line breaks, at a dash between spaces, and at
// every comma (Latin, Arabic or ideographic), a "but" after the comma left
// out ("we're not doing an allotment next year, can you stop the texts"
// gives "can you stop the texts"). Clauses of fewer than three non-space
// runes are dropped. A message with one clause returns it alone.
func Clauses(text string) []string {
	var out []string
	add := func(c string) {
		c = strings.TrimSpace(c)
		if n := utf8.RuneCountInString(c) - strings.Count(c, " "); n >= 3 {
			out = append(out, c)
		}
	}
	for _, s := range strings.FieldsFunc(text, func(r rune) bool { return strings.ContainsRune(sentenceEnds, r) }) {
		for _, part := range splitDashes(s) {
			splitCommas(part, add)
		}
	}
	return out
}

// splitDashes splits at " - ", " – " and " — ".
func splitDashes(s string) []string {
	var out []string
	for {
		i := -1
		for _, d := range []string{" - ", " – ", " — "} {
			if j := strings.Index(s, d); j >= 0 && (i < 0 || j < i) {
				i = j
			}
		}
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = strings.TrimLeftFunc(s[i+1:], func(r rune) bool { return r == '-' || r == '–' || r == '—' })
	}
}

// splitCommas calls add with each part of s between commas (Latin, Arabic
// or ideographic), leaving out a word of buts that follows a comma.
func splitCommas(s string, add func(string)) {
	start := 0
	for i := 0; i < len(s); {
		j := strings.IndexAny(s[i:], ",،、")
		if j < 0 {
			break
		}
		j += i
		_, size := utf8.DecodeRuneInString(s[j:])
		add(s[start:j])
		rest := strings.TrimLeftFunc(s[j+size:], unicode.IsSpace)
		w := rest
		if k := strings.IndexFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || r == ',' }); k >= 0 {
			w = rest[:k]
		}
		start = j + size
		if buts[strings.ToLower(w)] {
			start = len(s) - len(rest) + len(w)
		}
		i = start
	}
	add(s[start:])
}
