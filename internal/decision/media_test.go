package decision

import (
	"context"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
)

func TestReadAsJSON(t *testing.T) {
	tests := []struct {
		contentType, contentEncoding string
		want                         bool
	}{
		{"", "", true},
		{"application/json", "", true},
		{"Application/JSON", "", true},
		{"application/json; charset=utf-8", "", true},
		{"application/json;charset=UTF-8", "", true},
		{`application/json; charset="utf-8"`, "", true},
		{"application/json ; charset=utf8", "", true},
		{"application/json", "identity", true},
		{"application/json", "gzip", false},
		{"application/json", "br", false},
		{"application/json", "deflate", false},
		{"application/json", "identity, gzip", false},
		{"application/json; charset=utf-7", "", false},
		{"application/json; charset=utf-16", "", false},
		{"application/json; charset=iso-8859-1", "", false},
		{"application/json; charset=utf-8; charset=utf-7", "", false},
		{"application/json; charset*=utf-8''utf-7", "", false},
		{"application/json,application/x-www-form-urlencoded", "", false},
		{"application/x-www-form-urlencoded", "", false},
		{"multipart/form-data; boundary=x", "", false},
		{"text/plain", "", false},
		{"text/json", "", false},
		{"application/jsonx", "", false},
		{"application/vnd.api+json", "", false},
		{"application/json garbage", "", false},
	}
	for _, tc := range tests {
		if got := readAsJSON(tc.contentType, tc.contentEncoding); got != tc.want {
			t.Errorf("readAsJSON(%q, %q) = %v, want %v", tc.contentType, tc.contentEncoding, got, tc.want)
		}
	}
}

// TestDecideContentType: a send whose body a framework could read as
// something else than the JSON sendguard read answers invalid_json and
// consumes nothing.
func TestDecideContentType(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"instance_id":"shop","phone":"+966501234567","message":"Your order has shipped.","message_purpose":"transactional","x":"&phone=%2B966500000000&"}`)
	for _, tc := range []struct {
		ct, ce string
		want   catalog.Code
	}{
		{"application/x-www-form-urlencoded", "", catalog.InvalidJSON},
		{"application/json; charset=utf-7", "", catalog.InvalidJSON},
		{"application/json", "gzip", catalog.InvalidJSON},
		{"application/json", "", ""},
		{"", "", ""},
	} {
		before := f.usage(t)
		res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
			ContentType: tc.ct, ContentEncoding: tc.ce, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != tc.want || res.Allowed != (tc.want == "") {
			t.Errorf("Decide(content-type %q, content-encoding %q) = %v %v, want %v", tc.ct, tc.ce, res.Code, res.Allowed, tc.want)
		}
		if after := f.usage(t); tc.want != "" && after != before {
			t.Errorf("Decide(content-type %q, content-encoding %q) consumed quota: %v, was %v", tc.ct, tc.ce, after, before)
		}
	}
}
