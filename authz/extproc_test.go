package authz

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sendguard/sendguard/internal/catalog"
)

// responseHeaders is the ProcessingRequest Envoy sends for a response with
// status, on a request whose decision id attribute is id ("": none) and
// whose response.code_details is details ("": not sent).
func responseHeaders(status, id, details string, raw bool) *extprocv3.ProcessingRequest {
	hv := &corev3.HeaderValue{Key: ":status", Value: status}
	if raw {
		hv = &corev3.HeaderValue{Key: ":status", RawValue: []byte(status)}
	}
	attrs := map[string]any{}
	if id != "" {
		attrs[AttrDecisionID] = id
	}
	if details != "" {
		attrs[AttrCodeDetails] = details
	}
	st, err := structpb.NewStruct(attrs)
	if err != nil {
		panic(err)
	}
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "content-type", Value: "text/html"}, hv}},
		}},
		Attributes: map[string]*structpb.Struct{extProcAttrs: st},
	}
}

func TestResponseServerAnswer(t *testing.T) {
	failed := catalog.Body(catalog.GatewaySendFailed, catalog.Details{})
	tests := []struct {
		name            string
		status, id, det string
		raw             bool
		replaced        bool
		by              string // counted under by ("": not counted)
	}{
		{name: "sender 500", status: "500", id: "d1", det: "via_upstream", replaced: true, by: "sender"},
		{name: "sender 503 raw value", status: "503", id: "d1", det: "via_upstream", raw: true, replaced: true, by: "sender"},
		{name: "sender 504 without code details", status: "504", id: "d1", replaced: true, by: "sender"},
		{name: "sender 200", status: "200", id: "d1", det: "via_upstream"},
		{name: "sender 422", status: "422", id: "d1", det: "via_upstream"},
		{name: "sender 501 not in the set", status: "501", id: "d1", det: "via_upstream"},
		{name: "no decision id (not a send)", status: "500", det: "via_upstream"},
		{name: "envoy's local reply", status: "502", id: "d1", det: "upstream_reset_before_response_started{connection_termination}", by: "envoy"},
		{name: "unreadable status", status: "5xx", id: "d1", det: "via_upstream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := NewResponseServer([]int{504, 500, 503, 502}, nil).WithMetrics(reg)
			resp := s.answer(t.Context(), responseHeaders(tc.status, tc.id, tc.det, tc.raw))
			im := resp.GetImmediateResponse()
			if got := im != nil; got != tc.replaced {
				t.Fatalf("answer(%s) replaced = %v, want %v (%v)", tc.name, got, tc.replaced, resp)
			}
			if !tc.replaced && resp.GetResponseHeaders() == nil {
				t.Errorf("answer(%s) = %v, want a response-headers continue", tc.name, resp)
			}
			if tc.replaced {
				if im.GetStatus().GetCode() != 502 || !bytes.Equal(im.GetBody(), failed) {
					t.Errorf("answer(%s) = %d %s, want 502 %s", tc.name, im.GetStatus().GetCode(), im.GetBody(), failed)
				}
				got := map[string]string{}
				for _, h := range im.GetHeaders().GetSetHeaders() {
					got[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
					if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
						t.Errorf("header %s appended, want overwritten", h.GetHeader().GetKey())
					}
				}
				if got["content-type"] != "application/json" || got[HeaderDecisionID] != tc.id {
					t.Errorf("answer(%s) headers = %v, want content-type application/json and the decision id %q", tc.name, got, tc.id)
				}
			}
			for _, by := range []string{"sender", "envoy"} {
				want := 0.0
				if by == tc.by {
					want = 1
				}
				if n := testutil.ToFloat64(s.m.replaced.WithLabelValues(by, tc.status)); n != want {
					t.Errorf("sendguard_send_failures_total{by=%q,status=%q} = %v, want %v", by, tc.status, n, want)
				}
			}
		})
	}
}

func TestResponseServerConcurrent(t *testing.T) {
	s := NewResponseServer([]int{500, 502, 503, 504}, nil).WithMetrics(prometheus.NewRegistry())
	ids := []string{"قرار-١", "निर्णय-२", "karar-ğüş", "e\u0301-📦"}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			id := fmt.Sprintf("%s-%d", ids[i%len(ids)], i)
			status := []string{"200", "500"}[i%2]
			resp := s.answer(t.Context(), responseHeaders(status, id, "via_upstream", false))
			im := resp.GetImmediateResponse()
			if (im != nil) != (status == "500") {
				t.Errorf("answer(%s, %s) replaced = %v", status, id, im != nil)
				return
			}
			if im != nil && string(im.GetHeaders().GetSetHeaders()[1].GetHeader().GetRawValue()) != id {
				t.Errorf("answer(%s, %s) carries decision id %q", status, id, im.GetHeaders().GetSetHeaders()[1].GetHeader().GetRawValue())
			}
		})
	}
	wg.Wait()
	if n := testutil.ToFloat64(s.m.replaced.WithLabelValues("sender", "500")); n != 32 {
		t.Errorf("sendguard_send_failures_total{by=sender,status=500} = %v, want 32", n)
	}
}

// BenchmarkResponseServerAnswer is sendguard's side of the response path
// per allowed send: a 200 passed on, and a 500 replaced.
func BenchmarkResponseServerAnswer(b *testing.B) {
	s := NewResponseServer([]int{500, 502, 503, 504}, nil).WithMetrics(prometheus.NewRegistry())
	for _, status := range []string{"200", "500"} {
		req := responseHeaders(status, "01a21d62-26cb-738b-922e-158cc2527454", "via_upstream", true)
		b.Run(status, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.answer(b.Context(), req)
			}
		})
	}
}
