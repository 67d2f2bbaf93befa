package decision

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// canonicalPath returns the form of the request path p that routes are
// matched against, and false when p cannot be read one way only; such a
// request is refused (invalid_request_path) on any path, never forwarded.
//
// The canonical form is what the most lenient upstream could read p as:
// percent-decoded once (%2F as a separator), NFKC-normalised when it is not
// ASCII, every segment without its ";" parameters (as Tomcat and Spring drop
// them, also from "..;"), dot segments resolved, empty segments and the
// trailing slash removed. Routes then compare case-insensitively.
//
// Refused, because upstreams disagree on what they mean: an invalid or
// double (%25xx) escape; a "?" or "#" left in the path, raw or encoded;
// control characters, spaces, backslashes or Unicode format characters, raw
// or encoded; invalid or overlong UTF-8; a segment ending in "." or "+"
// (Windows servers and some frameworks drop a trailing dot; a "+" may be
// read as a space and trimmed).
//
// canonicalPath does not allocate when p is already canonical and plain
// ASCII, the common case.
func canonicalPath(p string) (string, bool) {
	if plainCanonical(p) {
		return p, true
	}
	b, ok := unescapePath(p)
	if !ok {
		return "", false
	}
	s := string(b)
	if !isASCII(s) {
		if !utf8.ValidString(s) {
			return "", false // invalid, overlong (%C0%AF) or surrogate UTF-8
		}
		s = norm.NFKC.String(s) // fullwidth "／" is "/" to some readers
	}
	for _, r := range s {
		if !pathRune(r) {
			return "", false
		}
	}
	segs := make([]string, 0, strings.Count(s, "/")+1)
	for seg := range strings.SplitSeq(s, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		switch {
		case seg == "" || seg == ".":
		case seg == "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		case strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, "+"):
			return "", false
		default:
			segs = append(segs, seg)
		}
	}
	return "/" + strings.Join(segs, "/"), true
}

// plainCanonical reports whether p is already canonical: "/" and segments
// of ASCII letters, digits, "-", "_", "~" and inner dots.
func plainCanonical(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '~':
		case c == '/':
			if p[i-1] == '/' {
				return false
			}
		case c == '.':
			// A dot may not end a segment: that also rules out "." and "..".
			if i+1 == len(p) || p[i+1] == '/' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// unescape decodes p's percent escapes once, with a leading "/" added when
// p has none. It fails on an invalid escape and on a double one: a "%"
// followed by two hex digits after decoding (%252F, %25%32%46).
func unescapePath(p string) ([]byte, bool) {
	b := make([]byte, 0, len(p)+1)
	if !strings.HasPrefix(p, "/") {
		b = append(b, '/')
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return nil, false
		}
		b = append(b, unhex(p[i+1])<<4|unhex(p[i+2]))
		i += 2
	}
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' && isHex(b[i+1]) && isHex(b[i+2]) {
			return nil, false
		}
	}
	return b, true
}

// pathRune reports whether r may appear in a decoded path.
func pathRune(r rune) bool {
	switch r {
	case '?', '#', '\\', ' ':
		return false
	}
	if r < utf8.RuneSelf {
		return r > 0x20 && r != 0x7f
	}
	return !unicode.IsControl(r) && !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) && r != utf8.RuneError
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
