package decision

import (
	"bytes"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/sendguard/sendguard/internal/catalog"
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

// parseBody is steps 2 and 3 of the decision: the body is a JSON object,
// and instance_id, phone and message are non-empty strings with a valid
// phone number. It returns the failing code (empty when the body passed)
// and, for validation_error, the offending fields in document order.
func (d *Decider) parseBody(body []byte, partial bool) (sendRequest, catalog.Code, []catalog.Field) {
	var req sendRequest
	if partial || len(body) > d.opts.MaxBodyBytes {
		return req, catalog.ValidationError, []catalog.Field{{Name: "body", Reason: reasonTooLarge}}
	}
	if !utf8.Valid(body) || !shallow(body, d.opts.MaxJSONDepth) || fastjson.ValidateBytes(body) != nil {
		return req, catalog.InvalidJSON, nil
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil || v.Type() != fastjson.TypeObject {
		return req, catalog.InvalidJSON, nil
	}

	var bad []catalog.Field
	str := func(name string, maxBytes int) string {
		f := v.Get(name)
		switch {
		case f == nil || f.Type() == fastjson.TypeNull:
			bad = append(bad, catalog.Field{Name: name, Reason: reasonRequired})
			return ""
		case f.Type() != fastjson.TypeString:
			bad = append(bad, catalog.Field{Name: name, Reason: reasonNotString})
			return ""
		}
		b := f.GetStringBytes()
		switch {
		case len(bytes.TrimSpace(b)) == 0:
			bad = append(bad, catalog.Field{Name: name, Reason: reasonEmpty})
			return ""
		case maxBytes > 0 && len(b) > maxBytes:
			bad = append(bad, catalog.Field{Name: name, Reason: reasonTooLong})
			return ""
		}
		return string(b)
	}
	req.instanceID = str("instance_id", 128)
	req.phone = str("phone", 64)
	if req.phone != "" {
		e164, ok := d.opts.Phones.E164(req.phone)
		if !ok {
			bad = append(bad, catalog.Field{Name: "phone", Reason: reasonInvalidPhone})
		}
		req.e164 = e164
	}
	req.message = str("message", 0)
	if req.message != "" && utf8.RuneCountInString(req.message) > d.opts.MaxMessageRunes {
		bad = append(bad, catalog.Field{Name: "message", Reason: reasonTooLong})
	}
	if len(bad) > 0 {
		return req, catalog.ValidationError, bad
	}
	if f := v.Get("message_purpose"); f != nil && f.Type() == fastjson.TypeString {
		req.purpose, req.purposePresent = string(f.GetStringBytes()), true
	}
	return req, "", nil
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
