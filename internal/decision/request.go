package decision

import (
	"bytes"
	"hash/maphash"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/phone"
)

// sendRequest is a parsed, validated send-message body.
type sendRequest struct {
	instanceID     string
	phone          string // as sent
	e164           string
	message        string
	purpose        string
	purposePresent bool // message_purpose was a JSON string
}

// parsers serve parseInbound; the send body has its own scan.
var parsers fastjson.ParserPool

// Field rejection reasons, written into validation_error details.
const (
	reasonRequired     = "required"
	reasonNotString    = "must_be_string"
	reasonEmpty        = "must_not_be_empty"
	reasonTooLong      = "too_long"
	reasonInvalidPhone = "invalid_phone_number"
	reasonTooLarge     = "too_large"
)

// The contract's top-level names, in the order validation_error lists them.
const (
	fieldInstance = iota
	fieldPhone
	fieldMessage
	fieldPurpose
)

var contract = [...]string{"instance_id", "phone", "message", "message_purpose"}

// parseBody is steps 2 and 3 of the decision: the body is a JSON object,
// and instance_id, phone and message are non-empty strings with a valid
// phone number. It returns the failing code (empty when the body passed)
// and, for validation_error, the offending fields in document order.
//
// sendguard must read the request the sender reads, whatever the sender's
// JSON library, so the body must be one that every library reads alike
// (I-JSON, RFC 7493) or it is invalid_json: strict RFC 8259 syntax, valid
// UTF-8, no byte order mark, nothing but white space after the object, no
// escape that is a lone surrogate, no object (at any depth) with a name
// twice after unescaping, and no top-level name that differs from a
// contract field only in case or in "_" and "-" ("PHONE", "Phone",
// "meſſage", "messagePurpose"), which Go's encoding/json and other
// case-insensitive binders read as that field. A string made only of
// invisible characters is empty, and the phone must be a plain phone
// string (phone.Plain).
func (d *Decider) parseBody(body []byte, partial bool) (sendRequest, catalog.Code, []catalog.Field) {
	var req sendRequest
	if partial || len(body) > d.opts.MaxBodyBytes {
		return req, catalog.ValidationError, []catalog.Field{{Name: "body", Reason: reasonTooLarge}}
	}
	s := scan{b: body, max: d.opts.MaxJSONDepth}
	if !s.body() {
		return req, catalog.InvalidJSON, nil
	}

	var bad []catalog.Field
	str := func(f int, maxBytes int) string {
		v, name := s.top[f], contract[f]
		switch v.kind {
		case kindAbsent, kindNull:
			bad = append(bad, catalog.Field{Name: name, Reason: reasonRequired})
			return ""
		case kindOther:
			bad = append(bad, catalog.Field{Name: name, Reason: reasonNotString})
			return ""
		}
		b := v.text(body)
		switch {
		case blank(b):
			bad = append(bad, catalog.Field{Name: name, Reason: reasonEmpty})
			return ""
		case maxBytes > 0 && len(b) > maxBytes:
			bad = append(bad, catalog.Field{Name: name, Reason: reasonTooLong})
			return ""
		}
		return string(b)
	}
	req.instanceID = str(fieldInstance, 128)
	req.phone = str(fieldPhone, 64)
	if req.phone != "" {
		e164, ok := "", phone.Plain(req.phone)
		if ok {
			e164, ok = d.opts.Phones.E164(req.phone)
		}
		if !ok {
			bad = append(bad, catalog.Field{Name: "phone", Reason: reasonInvalidPhone})
		}
		req.e164 = e164
	}
	req.message = str(fieldMessage, 0)
	if req.message != "" && utf8.RuneCountInString(req.message) > d.opts.MaxMessageRunes {
		bad = append(bad, catalog.Field{Name: "message", Reason: reasonTooLong})
	}
	if len(bad) > 0 {
		return req, catalog.ValidationError, bad
	}
	if v := s.top[fieldPurpose]; v.kind == kindString {
		req.purpose, req.purposePresent = string(v.text(body)), true
	}
	return req, "", nil
}

// What a scan saw as the value of a contract field.
const (
	kindAbsent = iota
	kindNull
	kindString
	kindOther // a number, boolean, array or object
)

type rawValue struct {
	kind    uint8
	escaped bool // the string holds a backslash escape
	str     span // a string's bytes between the quotes, as sent
}

// text is the string's value in body, unescaped.
func (v rawValue) text(body []byte) []byte {
	raw := body[v.str.from:v.str.to]
	if !v.escaped {
		return raw
	}
	return unescape(make([]byte, 0, len(raw)), raw)
}

// span is a part of the body, or with unescaped set of scan.unescaped.
// The scan keeps offsets, not slices, so that it stores no pointer and
// stays on the stack.
type span struct {
	from, to  int
	unescaped bool
}

// scan is one strict pass over a send body: it validates the syntax, the
// UTF-8 and the escapes, refuses repeated names, and notes where the
// contract fields' values are, without building a tree.
type scan struct {
	b     []byte
	i     int
	depth int
	max   int
	// The names of every open object, innermost object last, the first
	// ones inline (a scan stores no pointer to the stack, so it stays
	// there); an object's names are dropped when it closes.
	nkeys int
	keys  [16]span
	more  []span
	// unescaped holds the names that had escapes, unescaped.
	unescaped []byte
	top       [len(contract)]rawValue
}

func (s *scan) key(i int) span {
	if i < len(s.keys) {
		return s.keys[i]
	}
	return s.more[i-len(s.keys)]
}

func (s *scan) push(k span) {
	if s.nkeys < len(s.keys) {
		s.keys[s.nkeys] = k
	} else {
		s.more = append(s.more, k)
	}
	s.nkeys++
}

// drop forgets every name from the n-th on.
func (s *scan) drop(n int) {
	s.nkeys = n
	s.more = s.more[:max(0, n-len(s.keys))]
}

func (s *scan) name(k span) []byte {
	if k.unescaped {
		return s.unescaped[k.from:k.to]
	}
	return s.b[k.from:k.to]
}

// manyKeys is the size above which an object's names are checked for
// repeats with a hash set instead of one comparison per earlier name, so
// that a body of thousands of names costs linear time.
const manyKeys = 16

// nameSeed seeds the hash of names, so that a client cannot choose names
// that collide. It is set once and only read.
var nameSeed = maphash.MakeSeed()

// nameSlot is one slot of an open-addressing set of names: the name's hash
// and 1 + its index in the scan's names; 0 is a free slot.
type nameSlot struct {
	hash uint64
	idx  int
}

// insert adds name idx with hash h to set, a power of two long and at most
// half full, and reports false when an equal name is already there.
func (s *scan) insert(set []nameSlot, idx int, h uint64) bool {
	mask := uint64(len(set) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &set[i]
		if sl.idx == 0 {
			sl.hash, sl.idx = h, idx+1
			return true
		}
		if sl.hash == h && bytes.Equal(s.name(s.key(sl.idx-1)), s.name(s.key(idx))) {
			return false
		}
	}
}

// grow returns set in a table twice as long.
func (s *scan) grow(set []nameSlot) []nameSlot {
	bigger := make([]nameSlot, 2*len(set))
	mask := uint64(len(bigger) - 1)
	for _, sl := range set {
		if sl.idx == 0 {
			continue
		}
		i := sl.hash & mask
		for bigger[i].idx != 0 {
			i = (i + 1) & mask
		}
		bigger[i] = sl
	}
	return bigger
}

// body scans white space, one object, white space, and the end.
func (s *scan) body() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	if !s.object() {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

func (s *scan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scan) value() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		_, _, ok := s.str()
		return ok
	case 't':
		return s.lit("true")
	case 'f':
		return s.lit("false")
	case 'n':
		return s.lit("null")
	}
	return s.number()
}

func (s *scan) object() bool {
	if s.depth++; s.depth > s.max {
		return false
	}
	s.i++ // '{'
	start := s.nkeys
	var set []nameSlot // the object's names, once it has manyKeys
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		k, escaped, ok := s.str()
		if !ok {
			return false
		}
		if escaped {
			from := len(s.unescaped)
			s.unescaped = unescape(s.unescaped, s.b[k.from:k.to])
			k = span{from: from, to: len(s.unescaped), unescaped: true}
		}
		key := s.name(k)
		if s.nkeys-start < manyKeys {
			for i := start; i < s.nkeys; i++ {
				if bytes.Equal(s.name(s.key(i)), key) {
					return false
				}
			}
			s.push(k)
		} else {
			if set == nil {
				set = make([]nameSlot, 4*manyKeys)
				for i := start; i < s.nkeys; i++ {
					s.insert(set, i, maphash.Bytes(nameSeed, s.name(s.key(i))))
				}
			}
			s.push(k)
			if !s.insert(set, s.nkeys-1, maphash.Bytes(nameSeed, key)) {
				return false
			}
			if 2*(s.nkeys-start) > len(set) {
				set = s.grow(set)
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		field := -1
		if s.depth == 1 {
			if field, ok = contractField(key); !ok {
				return false
			}
		}
		switch {
		case field < 0:
			if !s.value() {
				return false
			}
		case s.i < len(s.b) && s.b[s.i] == '"':
			str, escaped, ok := s.str()
			if !ok {
				return false
			}
			s.top[field] = rawValue{kind: kindString, escaped: escaped, str: str}
		case s.i < len(s.b) && s.b[s.i] == 'n':
			if !s.lit("null") {
				return false
			}
			s.top[field].kind = kindNull
		default:
			if !s.value() {
				return false
			}
			s.top[field].kind = kindOther
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			s.drop(start)
			s.depth--
			return true
		default:
			return false
		}
	}
}

func (s *scan) array() bool {
	if s.depth++; s.depth > s.max {
		return false
	}
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return true
	}
	for {
		if !s.value() {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			s.depth--
			return true
		default:
			return false
		}
	}
}

func (s *scan) lit(word string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return false
	}
	s.i += len(word)
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scan) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	s.i = i
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// str scans a string at s.i and returns where its bytes between the quotes
// are, and whether they hold an escape. It refuses control characters,
// invalid UTF-8, unknown escapes and escapes that are lone surrogates
// ("\ud800": Go reads U+FFFD, Python keeps the surrogate).
func (s *scan) str() (str span, escaped, ok bool) {
	b := s.b
	start := s.i + 1
	for i := start; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return span{from: start, to: i}, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return span{}, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return span{}, false, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r >= 0xdc00 || i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return span{}, false, false
					}
					lo, ok := hex4(b, i+2)
					if !ok || lo < 0xdc00 || lo > 0xdfff {
						return span{}, false, false
					}
					i += 6
				}
			default:
				return span{}, false, false
			}
		case c < 0x20:
			return span{}, false, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return span{}, false, false
			}
			i += n
		}
	}
	return span{}, false, false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape appends the value of raw, a string's bytes that str accepted,
// to dst.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if utf16.IsSurrogate(r) {
				lo, _ := hex4(raw, i+8)
				r = utf16.DecodeRune(r, lo)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// contractField returns the index of key in contract, or -1 for another
// name, and false when key is a variant of a contract field that is not the
// field itself: equal to it ignoring case (Unicode simple folding, as
// encoding/json and strings.EqualFold compare, so "meſſage" with U+017F
// and the Kelvin sign count) and "_" and "-".
func contractField(key []byte) (int, bool) {
	for f, name := range contract {
		if string(key) == name {
			return f, true
		}
	}
	for _, name := range contract {
		if looseEqual(key, name) {
			return -1, false
		}
	}
	return -1, true
}

// looseEqual reports whether key equals name, a lower-case ASCII name,
// ignoring case, "_" and "-".
func looseEqual(key []byte, name string) bool {
	i, j := 0, 0
	for {
		for i < len(key) && (key[i] == '_' || key[i] == '-') {
			i++
		}
		for j < len(name) && name[j] == '_' {
			j++
		}
		if i == len(key) || j == len(name) {
			return i == len(key) && j == len(name)
		}
		want := name[j]
		j++
		if c := key[i]; c < utf8.RuneSelf {
			if c|0x20 != want {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(key[i:])
		i += n
		if !foldsTo(r, rune(want)) {
			return false
		}
	}
}

// foldsTo reports whether want is in r's simple case-folding orbit.
func foldsTo(r, want rune) bool {
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == want {
			return true
		}
	}
	return false
}

// blank reports whether b shows nothing: it is empty or holds only white
// space, control and format characters (ZWSP, ZWJ, bidi marks, BOM, word
// joiner, U+180E), combining marks with no base, variation selectors,
// default-ignorable code points (the Hangul fillers U+115F, U+1160,
// U+3164, U+FFA0) and the braille blank U+2800.
func blank(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c > ' ' && c != 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		if !invisible(r) {
			return false
		}
	}
	return true
}

func invisible(r rune) bool {
	switch r {
	case 0x115f, 0x1160, 0x3164, 0xffa0, 0x2800, 0x180e:
		return true
	}
	return unicode.IsSpace(r) || unicode.In(r, unicode.Cc, unicode.Cf, unicode.M, unicode.Zs,
		unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// shallow reports whether body nests arrays and objects at most max deep,
// so that a hostile body cannot make the parser recurse without bound.
func shallow(body []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return true
}
