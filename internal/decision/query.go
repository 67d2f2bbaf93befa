package decision

import "strings"

// contractInQuery reports whether the raw query string q (without "?")
// holds a parameter named like a contract field, as some framework reads
// the name: split at "&" and at ";" (older Python and Go), "+" read as a
// space and percent escapes decoded once, the part before a "[" (Rails and
// PHP read "phone[]" and "phone[0]" as phone), "." and " " read as "_"
// (PHP), and then compared as contractField compares body names: ignoring
// case, "_" and "-". Such a send is refused (invalid_request_query): a
// framework that merges the query into the body's parameters reads the
// query's value, and in Rails' params the query's value wins.
func contractInQuery(q string) bool {
	if q == "" {
		return false
	}
	for part := range strings.FieldsFuncSeq(q, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(part, "=")
		n := []byte(queryUnescape(name))
		if i := strings.IndexByte(string(n), '['); i >= 0 {
			n = n[:i]
		}
		for i, c := range n {
			if c == '.' || c == ' ' {
				n[i] = '_'
			}
		}
		for _, field := range contract {
			if looseEqual(n, field) {
				return true
			}
		}
	}
	return false
}

// queryUnescape decodes "+" as a space and each valid percent escape once;
// an invalid escape is kept as it is.
func queryUnescape(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
