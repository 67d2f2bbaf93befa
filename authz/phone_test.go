package authz

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// TestPhoneHeader: an allowed send goes upstream with the recipient
// sendguard checked, in E.164, whatever spelling the client sent, and a
// client-sent x-sendguard-phone is overwritten, not appended to.
func TestPhoneHeader(t *testing.T) {
	c, _, _ := client(t)
	for _, ph := range []string{"00966 50 123 4567", "+٩٦٦ ٥٠ ١٢٣ ٤٥٦٧", "+966 (50) 123-4567"} {
		req := checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", ph, okMessage, "transactional"))
		req.Attributes.Request.Http.Headers[HeaderPhone] = "+966500000000"
		resp, err := c.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("Check(phone %q) = %v, want OK", ph, resp)
		}
		var got []*corev3.HeaderValueOption
		for _, h := range ok.Headers {
			if h.Header.Key == HeaderPhone {
				got = append(got, h)
			}
		}
		if len(got) != 1 || got[0].Header.Value != recipient || got[0].AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("Check(phone %q) upstream %s = %v, want exactly %s with OVERWRITE_IF_EXISTS_OR_ADD", ph, HeaderPhone, got, recipient)
		}
	}
	// The whole header set, for a spelling that is not E.164.
	resp, err := c.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", "00966 50 123 4567", okMessage, "support")))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("Check = %v, want OK", resp)
	}
	golden(t, "allow_national_spelling.golden", []byte("upstream:\n"+dump(headerMap(ok.Headers))+"client:\n"+dump(headerMap(ok.ResponseHeadersToAdd))))
}

// TestAmbiguousBodies: bodies that a sender could read otherwise than
// sendguard are refused with the documented bodies, byte for byte.
func TestAmbiguousBodies(t *testing.T) {
	tests := []struct {
		name, body, golden string
	}{
		{"phone twice, suppressed last", `{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order shipped","message_purpose":"support","phone":"+966500000000"}`, "invalid_json.json"},
		{"phone twice, escaped", `{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order shipped","message_purpose":"support","ph\u006fne":"+966500000000"}`, "invalid_json.json"},
		{"PHONE", `{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order shipped","message_purpose":"support","PHONE":"+966500000000"}`, "invalid_json.json"},
		{"purpose twice", `{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order shipped","message_purpose":"support","Message_Purpose":"marketing"}`, "invalid_json.json"},
		{"BOM", "\ufeff" + sendBody("inst_12345", recipient, okMessage, "support"), "invalid_json.json"},
		{"second object", sendBody("inst_12345", recipient, okMessage, "support") + `{"phone":"+966500000000"}`, "invalid_json.json"},
		{"lone surrogate", `{"instance_id":"inst_12345","phone":"+966501234567","message":"hi \ud800","message_purpose":"support"}`, "invalid_json.json"},
		{"phone with ;ext=", sendBody("inst_12345", recipient+";ext=1", okMessage, "support"), "validation_error_invalid_phone_number.json"},
		{"phone with tel:", sendBody("inst_12345", "tel:"+recipient, okMessage, "support"), "validation_error_invalid_phone_number.json"},
		{"phone with an LRM", sendBody("inst_12345", "\u200e"+recipient, okMessage, "support"), "validation_error_invalid_phone_number.json"},
		{"invisible message", sendBody("inst_12345", recipient, "\u200b\u2060\u3164", "support"), "validation_error_message_must_not_be_empty.json"},
	}
	c, _, _ := client(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer key-demo", tc.body))
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied == nil {
				t.Fatalf("Check(%q) = %v, want a denial", tc.body, resp)
			}
			golden(t, tc.golden, []byte(denied.Body))
		})
	}
}
