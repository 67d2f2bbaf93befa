package decisionlog

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
)

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, U+2028 and U+2029 escaped (for JavaScript readers),
// and each byte of invalid UTF-8 replaced with U+FFFD, so every line is
// valid JSON whatever a client sent.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendField appends ,"name":"value" (or "name":… first in an object when
// b ends with '{').
func appendKey(b []byte, name string) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendStr(b []byte, name, v string) []byte {
	return appendString(appendKey(b, name), v)
}

func appendInt(b []byte, name string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, name), v, 10)
}

func appendBool(b []byte, name string, v bool) []byte {
	return strconv.AppendBool(appendKey(b, name), v)
}

func appendTime(b []byte, name string, t time.Time) []byte {
	b = append(appendKey(b, name), '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendInput appends the policy input as Rego saw it (policy.InputValue),
// less the recipient's number: what `sendguard replay` evaluates again.
func appendInput(b []byte, name string, in *policy.Input) []byte {
	b = append(appendKey(b, name), '{')
	b = append(appendKey(b, "instance"), '{')
	b = appendStr(b, "id", in.InstanceID)
	b = appendStr(b, "plan", in.Plan)
	b = appendBool(b, "paused", in.Paused)
	b = append(b, '}')
	if in.PurposePresent {
		b = appendStr(b, "purpose", in.Purpose)
	}
	b = append(appendKey(b, "recipient"), '{')
	b = appendBool(b, "suppressed", in.Suppressed)
	b = append(b, '}')
	b = appendSignals(b, "signals", in.Signals)
	return append(b, '}')
}

// appendSignals appends the signals as the policy input names them
// (policy.InputValue), the model's probabilities as the p_ signals.
func appendSignals(b []byte, name string, s risk.Signals) []byte {
	b = append(appendKey(b, name), '{')
	for _, f := range []struct {
		k string
		v int
	}{
		{"promo_terms", s.PromoTerms}, {"calls_to_action", s.CallsToAction}, {"discount_codes", s.DiscountCodes},
		{"percentages", s.Percentages}, {"prize_claims", s.PrizeClaims}, {"cold_outreach", s.ColdOutreach},
		{"political", s.Political}, {"transactional", s.Transactional}, {"shortener_links", s.ShortenerLinks},
		{"links", s.Links}, {"caps_ratio_pct", s.CapsRatioPct}, {"exclamations", s.Exclamations},
		{"emoji", s.Emoji}, {"length", s.Length},
		{"p_transactional", s.ModelTransactional}, {"p_promotional", s.ModelPromotional},
		{"p_cold_outreach", s.ModelColdOutreach}, {"p_political", s.ModelPolitical}, {"p_scam", s.ModelScam},
		{"segment_lead", s.ModelSegmentLead},
	} {
		b = appendInt(b, f.k, int64(f.v))
	}
	return append(b, '}')
}
