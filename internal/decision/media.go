package decision

import (
	"mime"
	"strings"
)

// readAsJSON reports whether a send body declared with the Content-Type
// and Content-Encoding values contentType and contentEncoding (as Envoy
// hands them: repeated headers joined with ",") is read as the JSON that
// sendguard reads by every sender, whatever its framework.
//
// Allowed: no Content-Type, or application/json (any case) with no charset
// or charset=utf-8; and no Content-Encoding, or identity. Refused: any other
// media type, which a framework may bind otherwise (a form-encoded
// application/x-www-form-urlencoded body of JSON that holds
// "&phone=%2B966500000000&" in a string is that phone to Spring, Express,
// Flask, PHP and Rails); another charset, which a framework may decode
// otherwise (Express's body-parser decodes charset=utf-7, in which
// "+ACI-" is a quote, so a string can hide a second "phone"); an extended
// (RFC 2231) parameter; two Content-Type headers; and a content coding
// (gzip, br, deflate), which a sender may decode into a body sendguard
// never read.
func readAsJSON(contentType, contentEncoding string) bool {
	if ce := strings.TrimSpace(contentEncoding); ce != "" && !strings.EqualFold(ce, "identity") {
		return false
	}
	switch strings.ToLower(contentType) {
	case "", "application/json", "application/json; charset=utf-8", "application/json;charset=utf-8":
		return true // the common cases, without parsing
	}
	if strings.TrimSpace(contentType) == "" {
		return true
	}
	if strings.ContainsRune(contentType, '*') {
		return false
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	for name, v := range params {
		if name != "charset" {
			continue
		}
		if !strings.EqualFold(v, "utf-8") && !strings.EqualFold(v, "utf8") {
			return false
		}
	}
	return true
}
