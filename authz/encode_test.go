package authz

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/decision"
)

// answers is every kind of CheckResponse Check gives: allows (with and
// without the client's RateLimit headers, in shadow mode, off the send
// path), every documented denial with its body and up to five extra
// headers (past deny's three inline ones), the failure answer; with
// multilingual values and an empty one.
func answers() map[string]*authv3.CheckResponse {
	out := map[string]*authv3.CheckResponse{}
	values := []string{"transactional", arabic, hindi, turkish, emoji, combining, ""}
	for i, v := range values {
		res := decision.Result{ID: "01JDQ8Z6Q2X7Y9W3V5T1R0P8N" + fmt.Sprint(i), Send: true, Allowed: true, RiskScore: i * 17,
			Purpose: v, Phone: "+96650123456" + fmt.Sprint(i), Instance: "inst_" + v}
		out["allow "+v] = allow(res)
		res.Headers = []decision.Header{{Key: "ratelimit-policy", Value: `"daily";q=100;w=86400`}, {Key: "ratelimit", Value: `"daily";r=` + fmt.Sprint(i) + `;t=` + v}}
		out["allow with ratelimit "+v] = allow(res)
		res.Shadow, res.Code = true, catalog.SendingThrottled
		out["shadow "+v] = allow(res)
		out["passthrough "+v] = allow(decision.Result{ID: "id-" + v})
	}
	for i, e := range catalog.All() {
		score := i * 7
		body := catalog.Body(e.Code, catalog.Details{RiskScore: &score, Action: values[i%len(values)]})
		for n := range 6 {
			var extra []decision.Header
			for j := range n {
				extra = append(extra, decision.Header{Key: fmt.Sprintf("x-extra-%d", j), Value: values[(i+j)%len(values)]})
			}
			out[fmt.Sprintf("deny %s with %d headers", e.Code, n)] = deny("id-"+string(e.Code), e.Status, body, extra)
		}
	}
	out["deny with an undocumented status"] = deny("id", 599, []byte(`{}`), nil)
	out["deny with no body"] = deny("id", 403, nil, nil)
	// Past the encoder's 1 KB on the stack, lengths of two and three bytes.
	out["deny with a 20 KB body"] = deny("id", 400, []byte(strings.Repeat(hindi, 300)), []decision.Header{{Key: "x-long", Value: strings.Repeat(emoji, 40)}})
	out["unavailable"] = unavailable("01JDQ8Z6Q2X7Y9W3V5T1R0P8NZ")
	out["empty"] = &authv3.CheckResponse{}
	return out
}

// TestMarshalCheckResponse: the server's codec writes every answer Check
// gives byte for byte as proto.Marshal does (what gRPC's proto codec sent
// before), from 16 goroutines at once (the responses share their
// immutable parts).
func TestMarshalCheckResponse(t *testing.T) {
	c := codec{encoding.GetCodecV2(grpcproto.Name)}
	all := answers()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for name, r := range all {
				want, err := proto.Marshal(r)
				if err != nil {
					t.Errorf("proto.Marshal(%s): %v", name, err)
					return
				}
				got, ok := marshalCheckResponse(r)
				if !ok {
					t.Errorf("marshalCheckResponse(%s) declined", name)
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("marshalCheckResponse(%s) = %x, want %x", name, got, want)
				}
				data, err := c.Marshal(r)
				if err != nil || !bytes.Equal(data.Materialize(), want) {
					t.Errorf("codec.Marshal(%s) = %x, %v, want %x", name, data.Materialize(), err, want)
				}
			}
		})
	}
	wg.Wait()
}

var (
	statusWithDetails = rpcstatus.Status{Code: 7, Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/x"}}}
	statusBadMessage  = rpcstatus.Status{Code: 7, Message: "\xff"}
)

// TestMarshalCheckResponseDeclines: a response with a field the encoder
// does not write, or a string proto.Marshal refuses (not UTF-8), goes to
// proto.Marshal: the same bytes, or the same error.
func TestMarshalCheckResponseDeclines(t *testing.T) {
	c := codec{encoding.GetCodecV2(grpcproto.Name)}
	md, _ := structpb.NewStruct(map[string]any{"k": "v"})
	cases := map[string]func(r *authv3.CheckResponse){
		"dynamic metadata": func(r *authv3.CheckResponse) { r.DynamicMetadata = md },
		"status details":   func(r *authv3.CheckResponse) { r.Status = proto.Clone(&statusWithDetails).(*rpcstatus.Status) },
		"status not UTF-8": func(r *authv3.CheckResponse) { r.Status = proto.Clone(&statusBadMessage).(*rpcstatus.Status) },
		"ok metadata":      func(r *authv3.CheckResponse) { r.GetOkResponse().DynamicMetadata = md }, //nolint:staticcheck
		"query parameter": func(r *authv3.CheckResponse) {
			r.GetOkResponse().QueryParametersToSet = []*corev3.QueryParameter{{Key: "a", Value: "b"}}
		},
		"append": func(r *authv3.CheckResponse) {
			r.GetOkResponse().Headers[0].Append = wrapperspb.Bool(true) //nolint:staticcheck
		},
		"header value not UTF-8": func(r *authv3.CheckResponse) { r.GetOkResponse().Headers[1].Header.Value = "\xff\xfe" },
		"header key not UTF-8":   func(r *authv3.CheckResponse) { r.GetOkResponse().Headers[1].Header.Key = "x-\xc3" },
		"removed not UTF-8":      func(r *authv3.CheckResponse) { r.GetOkResponse().HeadersToRemove = []string{"\xed\xa0\x80"} },
		"nil header":             func(r *authv3.CheckResponse) { r.GetOkResponse().Headers[0] = nil },
		"error response": func(r *authv3.CheckResponse) {
			r.HttpResponse = &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{Body: "x"}}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			// A fresh allow each time: allow's parts are shared (statusOK).
			r := proto.Clone(allow(decision.Result{ID: "id", Send: true, Allowed: true, Purpose: turkish, Phone: "+966501234567", Instance: "inst_1"})).(*authv3.CheckResponse)
			mutate(r)
			if _, ok := marshalCheckResponse(r); ok {
				t.Errorf("marshalCheckResponse(%s) = ok, want declined", name)
			}
			want, werr := proto.Marshal(r)
			data, err := c.Marshal(r)
			if (err == nil) != (werr == nil) || (err == nil && !bytes.Equal(data.Materialize(), want)) {
				t.Errorf("codec.Marshal(%s) = %x, %v, want %x, %v", name, data.Materialize(), err, want, werr)
			}
		})
	}
	if _, ok := marshalCheckResponse(nil); ok {
		t.Error("marshalCheckResponse(nil) = ok, want declined")
	}
	bad := deny("id", 403, []byte("{\"a\":\"\xff\"}"), nil)
	if _, ok := marshalCheckResponse(bad); ok {
		t.Error("marshalCheckResponse(a body not UTF-8) = ok, want declined")
	}
}

// TestMarshalCheckResponseAllocations: the codec writes an answer in two
// allocations (its bytes, and the buffer list gRPC takes them in); gRPC's
// proto codec took three, and a reflective walk.
func TestMarshalCheckResponseAllocations(t *testing.T) {
	c := codec{encoding.GetCodecV2(grpcproto.Name)}
	res := decision.Result{ID: "01JDQ8Z6Q2X7Y9W3V5T1R0P8NZ", Send: true, Allowed: true, RiskScore: 12, Purpose: "transactional", Phone: "+966501234567", Instance: "inst_12345"}
	for name, r := range map[string]*authv3.CheckResponse{
		"allow": allow(res),
		"deny":  deny("id", 429, catalog.Body(catalog.SendingThrottled, catalog.Details{}), []decision.Header{{Key: "retry-after", Value: "1"}}),
	} {
		if n := testing.AllocsPerRun(100, func() { c.Marshal(r) }); n > 2 {
			t.Errorf("codec.Marshal(%s) = %.0f allocations, want at most 2", name, n)
		}
	}
}

func BenchmarkMarshalCheckResponse(b *testing.B) {
	r := allow(decision.Result{ID: "01JDQ8Z6Q2X7Y9W3V5T1R0P8NZ", Send: true, Allowed: true, RiskScore: 12, Purpose: "transactional", Phone: "+966501234567", Instance: "inst_12345"})
	b.Run("codec", func(b *testing.B) {
		c := codec{encoding.GetCodecV2(grpcproto.Name)}
		b.ReportAllocs()
		for b.Loop() {
			c.Marshal(r)
		}
	})
	b.Run("proto", func(b *testing.B) {
		c := encoding.GetCodecV2(grpcproto.Name)
		b.ReportAllocs()
		for b.Loop() {
			c.Marshal(r)
		}
	})
}
