package envoy_test

import (
	"bytes"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
)

// TestAmbiguousBodiesEndToEnd: through the real Envoy, a body that a sender
// could read otherwise than sendguard (the phone twice, a clean number
// first and a suppressed one last, which encoding/json, Python and
// JavaScript read as the suppressed one) is refused with the documented
// answer and never reaches the sender; an allowed send reaches the sender
// with x-sendguard-phone, the E.164 number sendguard checked, replacing any
// value the client sent.
func TestAmbiguousBodiesEndToEnd(t *testing.T) {
	s := startStack(t)

	t.Run("refused and never forwarded", func(t *testing.T) {
		tests := []struct {
			name, body string
			code       catalog.Code
			details    catalog.Details
		}{
			{"phone twice, suppressed last", `{"instance_id":"inst_12345","phone":"+966501234567","message":"` + okMessage + `","message_purpose":"transactional","phone":"+966500000000"}`, catalog.InvalidJSON, catalog.Details{}},
			{"phone twice, escaped name", `{"instance_id":"inst_12345","phone":"+966501234567","message":"` + okMessage + `","message_purpose":"transactional","ph\u006fne":"+966500000000"}`, catalog.InvalidJSON, catalog.Details{}},
			{"PHONE", `{"instance_id":"inst_12345","phone":"+966501234567","message":"` + okMessage + `","message_purpose":"transactional","PHONE":"+966500000000"}`, catalog.InvalidJSON, catalog.Details{}},
			{"purpose twice", `{"instance_id":"inst_12345","phone":"+966501234567","message":"` + okMessage + `","message_purpose":"transactional","message_purpose":"marketing"}`, catalog.InvalidJSON, catalog.Details{}},
			{"instance twice", `{"instance_id":"inst_12345","phone":"+966501234567","message":"` + okMessage + `","message_purpose":"transactional","instance_id":"inst_theirs"}`, catalog.InvalidJSON, catalog.Details{}},
			{"BOM", "\ufeff" + sendBody("inst_12345", recipient, okMessage, "transactional"), catalog.InvalidJSON, catalog.Details{}},
			{"second object", sendBody("inst_12345", recipient, okMessage, "transactional") + `{"phone":"+966500000000"}`, catalog.InvalidJSON, catalog.Details{}},
			{"lone surrogate", `{"instance_id":"inst_12345","phone":"+966501234567","message":"hi \ud800","message_purpose":"transactional"}`, catalog.InvalidJSON, catalog.Details{}},
			{"phone with ;ext=", sendBody("inst_12345", recipient+";ext=123", okMessage, "transactional"), catalog.ValidationError,
				catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "invalid_phone_number"}}}},
			{"phone with tel:", sendBody("inst_12345", "tel:+966500000000", okMessage, "transactional"), catalog.ValidationError,
				catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "invalid_phone_number"}}}},
			{"invisible message", sendBody("inst_12345", recipient, "\u200b\u200d\u2800", "transactional"), catalog.ValidationError,
				catalog.Details{Fields: []catalog.Field{{Name: "message", Reason: "must_not_be_empty"}}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := s.rec.Len()
				r := s.send("key-demo", tc.body)
				e, _ := catalog.Lookup(tc.code)
				if want := catalog.Body(tc.code, tc.details); r.status != e.Status || !bytes.Equal(r.body, want) {
					t.Errorf("POST %q = %d %s\nwant %d %s", tc.body, r.status, r.body, e.Status, want)
				}
				if got := s.rec.Len(); got != before {
					t.Errorf("the sender received %d requests for a refused body", got-before)
				}
			})
		}
	})

	t.Run("an allowed send carries x-sendguard-phone", func(t *testing.T) {
		before := s.rec.Len()
		body := sendBody("inst_12345", "00966 50 123 4567", okMessage, "transactional")
		r := s.do("POST", "/api/send-message", map[string]string{
			"Authorization":     "Bearer key-demo",
			"Content-Type":      "application/json",
			"X-Sendguard-Phone": "+966500000000",
		}, []byte(body))
		if r.status != 200 {
			t.Fatalf("status = %d, body %s", r.status, r.body)
		}
		reqs := s.rec.Requests()
		if len(reqs) != before+1 {
			t.Fatalf("sender received %d requests, want 1", len(reqs)-before)
		}
		got := reqs[len(reqs)-1]
		if v := got.Header.Values("X-Sendguard-Phone"); len(v) != 1 || v[0] != recipient {
			t.Errorf("sender saw x-sendguard-phone %q, want exactly [%q]", v, recipient)
		}
		if string(got.Body) != body {
			t.Errorf("sender saw body %s, want %s", got.Body, body)
		}
	})

	t.Run("a client's x-sendguard-phone never reaches the sender on other routes", func(t *testing.T) {
		before := s.rec.Len()
		r := s.do("POST", "/api/other", map[string]string{"X-Sendguard-Phone": "+966500000000"}, []byte(`{"phone":"+966500000000"}`))
		if r.status != 200 || s.rec.Len() != before+1 {
			t.Fatalf("POST /api/other = %d, sender saw %d", r.status, s.rec.Len()-before)
		}
		if v := s.rec.Requests()[before].Header.Values("X-Sendguard-Phone"); len(v) != 0 {
			t.Errorf("sender saw x-sendguard-phone %q on another route", v)
		}
	})
}
