package authz

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/limiter"
)

// Multilingual header values and bodies: Arabic, Hindi, Turkish (dotted and
// dotless i), emoji with a ZWJ sequence, a combining mark.
const (
	arabic    = "مرحبا، رمز التحقق الخاص بك هو 4821"
	hindi     = "नमस्ते, आपका सत्यापन कोड 4821 है"
	turkish   = "İstanbul'dan ılık selamlar, kodunuz 4821"
	emoji     = "👨‍👩‍👧 code 4821 ✅"
	combining = "Cafe\u0301 e\u0301te\u0301 4821"
)

// envoyRequest is a CheckRequest shaped like the ones Envoy sends for a
// send (source and destination addresses, the request time, the HTTP
// request with ~15 headers and its raw body, metadata), with body as the
// message text.
func envoyRequest(msg string) *authv3.CheckRequest {
	addr := func(ip string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
		}}}
	}
	md, _ := structpb.NewStruct(map[string]any{"tenant": "demo", "نص": "قيمة", "n": 3.5, "list": []any{"a", true, nil}})
	body := sendBody("inst_12345", recipient, msg, "transactional")
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      addr("10.0.0.7", 51234),
		Destination: addr("127.0.0.1", 10000),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(testNow),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "15215958413522498146", Method: "POST", Path: "/api/send-message", Host: "localhost:10000",
				Scheme: "http", Protocol: "HTTP/1.1", Size: int64(len(body)), RawBody: []byte(body),
				Headers: map[string]string{
					":authority": "localhost:10000", ":method": "POST", ":path": "/api/send-message", ":scheme": "http",
					"authorization": "Bearer key-demo", "content-type": "application/json", "content-length": fmt.Sprint(len(body)),
					"user-agent": "curl/8.5.0", "accept": "*/*", "x-forwarded-proto": "http",
					"x-request-id": "0b8e1a5e-8f0d-4b8e-9a57-4b1d5c9e2f11", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
					"x-customer-note": arabic, "x-hindi": hindi, "x-emoji": emoji,
				},
			},
		},
		ContextExtensions: map[string]string{"virtual_host": "sendguard", "şehir": turkish},
		MetadataContext:   &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.lua": md}},
		RouteMetadataContext: &corev3.Metadata{TypedFilterMetadata: map[string]*anypb.Any{
			"x": {TypeUrl: "type.googleapis.com/google.protobuf.Struct", Value: []byte{0xff, 0xfe}},
		}},
		TlsSession: &authv3.AttributeContext_TLSSession{Sni: "api.example.com"},
	}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Hand-built wire data.
func tag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(b, num, typ)
}

func field(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(tag(nil, num, protowire.BytesType), v)
}

func str(num protowire.Number, s string) []byte { return field(num, []byte(s)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// inHTTP wraps the fields of an HttpRequest in a whole CheckRequest.
func inHTTP(fields ...[]byte) []byte {
	return field(fieldAttributes, field(fieldRequest, field(fieldHTTP, cat(fields...))))
}

func header(k, v string) []byte { return field(fieldHeaders, cat(str(1, k), str(2, v))) }

// unknowns is one unknown field of every wire type, a group with a nested
// group among them.
func unknowns(num protowire.Number) []byte {
	g := tag(nil, num+1, protowire.StartGroupType)
	g = protowire.AppendVarint(tag(g, 1, protowire.VarintType), 7)
	g = append(tag(g, 2, protowire.StartGroupType), str(3, "\xff")...)
	g = tag(tag(g, 2, protowire.EndGroupType), num+1, protowire.EndGroupType)
	b := protowire.AppendVarint(tag(nil, num, protowire.VarintType), 1<<40)
	b = protowire.AppendFixed32(tag(b, num, protowire.Fixed32Type), 5)
	b = protowire.AppendFixed64(tag(b, num, protowire.Fixed64Type), 6)
	b = append(b, field(num+2, []byte("\xff\xfe not utf-8"))...)
	return append(b, g...)
}

// step is one layer of nested wire data, outermost first: a
// length-delimited field (num) holding everything after it, or literal
// bytes (lit) before it.
type step struct {
	num protowire.Number
	lit []byte
}

// nested writes content inside steps in one pass, so that nesting
// thousands of levels deep costs no more than its length.
func nested(content []byte, steps ...step) []byte {
	sizes := make([]int, len(steps))
	rest := len(content)
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].lit != nil {
			rest += len(steps[i].lit)
			continue
		}
		sizes[i] = rest
		rest += protowire.SizeTag(steps[i].num) + protowire.SizeVarint(uint64(rest))
	}
	b := make([]byte, 0, rest)
	for i, s := range steps {
		if s.lit != nil {
			b = append(b, s.lit...)
			continue
		}
		b = protowire.AppendVarint(tag(b, s.num, protowire.BytesType), uint64(sizes[i]))
	}
	return append(b, content...)
}

// repeat is n copies of steps.
func repeat(n int, steps ...step) []step {
	var out []step
	for range n {
		out = append(out, steps...)
	}
	return out
}

// In a google.protobuf.Struct: fields{"k": Value{struct_value: Struct}},
// and fields{"k": Value{list_value: ListValue{values: [Value{struct_value: Struct}]}}}.
var (
	structInStruct = []step{{num: 1}, {lit: str(1, "k")}, {num: 2}, {num: 5}}
	structInList   = []step{{num: 1}, {lit: str(1, "k")}, {num: 2}, {num: 6}, {num: 1}, {num: 5}}
	// metadataStruct is the Struct of metadata_context.filter_metadata["f"].
	metadataStruct = []step{{num: fieldAttributes}, {num: 11}, {num: 1}, {lit: str(1, "f")}, {num: 2}}
)

// wireCases are CheckRequests on the wire, valid and not, that decodeCheck
// must read exactly as proto.Unmarshal and requestOf do.
func wireCases(t testing.TB) []struct {
	name string
	b    []byte
} {
	t.Helper()
	envoy := marshal(t, envoyRequest(arabic))
	hindiBody := envoyRequest("")
	hindiBody.Attributes.Request.Http.RawBody = nil
	hindiBody.Attributes.Request.Http.Body = sendBody("inst_12345", recipient, hindi, "transactional")
	merged := envoyRequest(emoji)
	merged.Attributes.Request.Http.Headers = map[string]string{"authorization": "Bearer other", "x-second": turkish}
	merged.Attributes.Request.Http.Path = "/api/send-message?x=1"
	merged.Attributes.Request.Http.RawBody = nil
	headerMap := envoyRequest(combining)
	headerMap.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "authorization", RawValue: []byte("Bearer \xff")}, {Key: "x", Value: hindi},
	}}
	// nest puts content, a Struct's fields, a structs and b lists deep
	// in the metadata: the innermost Struct has 9995-3a-5b levels of
	// proto.Unmarshal's recursion limit left (CheckRequest, attributes,
	// metadata_context, the filter_metadata entry and its Struct take 5;
	// a Struct in a Struct takes 3: the entry, the Value, the Struct; one
	// through a list 5).
	nest := func(a, b int, content []byte) []byte {
		steps := append(append(slices.Clone(metadataStruct), repeat(b, structInList...)...), repeat(a, structInStruct...)...)
		return nested(content, steps...)
	}
	mapOfWrongWireType := protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1) // Struct.fields as a varint
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"envoy send, Arabic", envoy},
		{"envoy send, Hindi in body not raw_body", marshal(t, hindiBody)},
		{"envoy send, emoji, merged with a second CheckRequest", append(bytes.Clone(envoy), marshal(t, merged)...)},
		{"envoy send with a header_map", marshal(t, headerMap)},
		{"http twice in one request, merged", field(fieldAttributes, field(fieldRequest, cat(
			field(fieldHTTP, cat(str(fieldMethod, "GET"), header("a", "1"), str(fieldPath, "/p1"), field(fieldRawBody, []byte(turkish)))),
			field(fieldHTTP, cat(str(fieldMethod, "POST"), header("b", emoji), header("a", "2"))))))},
		{"raw_body emptied by a later value", inHTTP(field(fieldRawBody, []byte("x")), str(fieldBody, combining), field(fieldRawBody, nil))},
		{"body emptied by a later value", inHTTP(str(fieldBody, hindi), str(fieldBody, ""))},
		{"method set then emptied", inHTTP(str(fieldMethod, "POST"), str(fieldMethod, ""))},
		{"header entry key twice, value twice", inHTTP(field(fieldHeaders, cat(str(1, "authorization"), str(2, "Bearer a"), str(1, "content-type"), str(2, "text/plain"))))},
		{"header entry without key", inHTTP(field(fieldHeaders, str(2, arabic)))},
		{"header entry without value", inHTTP(field(fieldHeaders, str(1, "x-envoy-auth-partial-body")))},
		{"header entry empty", inHTTP(field(fieldHeaders, nil))},
		{"duplicate header key, last wins", inHTTP(header(headerPartialBody, "true"), header(headerPartialBody, "false"))},
		{"partial body", inHTTP(header(headerPartialBody, "true"), str(fieldPath, "/api/send-message?phone=%2B1"))},
		{"unknown fields at every level", cat(unknowns(9), field(fieldAttributes, cat(unknowns(20), field(fieldRequest, cat(unknowns(30),
			field(fieldHTTP, cat(unknowns(40), str(fieldMethod, "POST"), field(fieldHeaders, cat(unknowns(3), str(1, "k"), str(2, "v"))))))))))},
		{"wrong wire types are unknown fields", cat(
			protowire.AppendVarint(tag(nil, fieldAttributes, protowire.VarintType), 1),
			field(fieldAttributes, field(fieldRequest, field(fieldHTTP, cat(
				protowire.AppendVarint(tag(nil, fieldMethod, protowire.VarintType), 3),
				protowire.AppendFixed32(tag(nil, fieldHeaders, protowire.Fixed32Type), 3),
				protowire.AppendVarint(tag(nil, 5, protowire.VarintType), 3), // host
				str(fieldPath, "/api/send-message"),
				field(fieldHeaders, cat(protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1), str(2, "v")))))))),
		},
		{"headers of the wrong wire type only: an empty map", inHTTP(protowire.AppendFixed64(tag(nil, fieldHeaders, protowire.Fixed64Type), 1))},
		{"not UTF-8: method", inHTTP(str(fieldMethod, "PO\xffST"))},
		{"not UTF-8: path", inHTTP(str(fieldPath, "/api/\xc3"))},
		{"not UTF-8: body", inHTTP(str(fieldBody, "{\"message\":\"\xed\xa0\x80\"}"))},
		{"not UTF-8: raw_body is bytes", inHTTP(field(fieldRawBody, []byte("\xff\xfe")))},
		{"not UTF-8: header value", inHTTP(header("authorization", "Bearer \xff"))},
		{"not UTF-8: header key", inHTTP(header("x-\xff", "v"))},
		{"not UTF-8: host, a field not read", inHTTP(str(5, "h\xffst"))},
		{"not UTF-8: context_extensions", field(fieldAttributes, field(10, cat(str(1, "k"), str(2, "\xff"))))},
		{"not UTF-8: source address", field(fieldAttributes, field(1, field(1, field(1, str(2, "10.0.0.\xff")))))},
		{"not UTF-8: a Struct key", nested(field(1, str(1, "\xff")), metadataStruct...)},
		{"not UTF-8: a Value deep in metadata", nest(0, 20, field(1, cat(str(1, "k"), field(2, str(3, "\xff")))))},
		{"not UTF-8: header_map value", inHTTP(field(13, field(1, str(2, "\xff"))))},
		{"not UTF-8: Any value is bytes", field(fieldAttributes, field(13, field(2, cat(str(1, "k"), field(2, cat(str(1, "t"), field(2, []byte{0xff})))))))},
		{"truncated", envoy[:len(envoy)-3]},
		{"truncated inside a field not read", field(fieldAttributes, append(tag(nil, 1, protowire.BytesType), 5, 1))},
		{"bad varint", []byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"field number 0", inHTTP([]byte{0x02, 0x00})},
		{"field number too large", protowire.AppendVarint(tag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 1)},
		{"end group at top level", tag(nil, 5, protowire.EndGroupType)},
		{"end group in a message", inHTTP(tag(nil, 5, protowire.EndGroupType))},
		{"group not closed", tag(nil, 5, protowire.StartGroupType)},
		{"group closed by another number", tag(tag(nil, 5, protowire.StartGroupType), 6, protowire.EndGroupType)},
		{"wire type 6", inHTTP([]byte{0x16})},
		{"wire type 7 on a read field", inHTTP(tag(nil, fieldMethod, 7))},
		{"end group in a header entry", inHTTP(field(fieldHeaders, tag(nil, 1, protowire.EndGroupType)))},
		{"field number 0 in a header entry", inHTTP(field(fieldHeaders, []byte{0x02, 0x00}))},
		{"nesting: 0 levels left", nest(3330, 1, nil)},
		{"nesting: 0 levels left, then a map of the wrong wire type", nest(3330, 1, mapOfWrongWireType)},
		{"nesting: 1 level left, then a map of the wrong wire type", nest(3328, 2, mapOfWrongWireType)},
		{"nesting: 2 levels left, then a header map entry", nest(3331, 0, str(1, "\xff"))},
		{"nesting past the recursion limit", nest(3332, 0, nil)},
		{"lists past the recursion limit", nest(0, 2000, nil)},
	}
	captured, err := filepath.Glob("testdata/envoy-check-*.bin")
	if err != nil || len(captured) == 0 {
		t.Fatalf("testdata/envoy-check-*.bin: %v, %d files", err, len(captured))
	}
	for _, p := range captured {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			b    []byte
		}{"captured " + filepath.Base(p), b})
	}
	return tests
}

// decodeCheckLikeProto fails the test unless decodeCheck reads b as
// requestOf(proto.Unmarshal(b)) does, and errs exactly when proto.Unmarshal
// does.
func decodeCheckLikeProto(t *testing.T, b []byte) {
	t.Helper()
	var m authv3.CheckRequest
	perr := proto.Unmarshal(b, &m)
	got, err := decodeCheck(bytes.Clone(b))
	if (err != nil) != (perr != nil) {
		t.Fatalf("decodeCheck(%q) error = %v, proto.Unmarshal's = %v", b, err, perr)
	}
	if err != nil {
		return
	}
	if want := requestOf(&m); !reflect.DeepEqual(withHeaderMap(got), withHeaderMap(want)) {
		t.Fatalf("decodeCheck(%q) = %+v, want %+v", b, got, want)
	}
}

// requestHeaders is r's headers as a map, whichever way r holds them (nil
// for none: a nil map and an empty one read alike).
func requestHeaders(r decision.Request) map[string]string {
	if len(r.Headers) > 0 {
		return r.Headers
	}
	if len(r.HeaderList) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, h := range r.HeaderList {
		m[h.Key] = h.Value
	}
	return m
}

// withHeaderMap is r with its headers in Headers, as requestHeaders gives.
func withHeaderMap(r decision.Request) decision.Request {
	r.Headers, r.HeaderList = requestHeaders(r), nil
	return r
}

// TestDecodeCheck: decodeCheck reads every case as proto.Unmarshal and
// requestOf do, errors included: merged messages, last values winning (an
// empty one too), map entries without a key or value, unknown fields and
// groups, fields of the wrong wire type, invalid UTF-8 in fields it reads
// and in fields it skips, malformed data, nesting at and past the limit.
func TestDecodeCheck(t *testing.T) {
	for _, tc := range wireCases(t) {
		t.Run(tc.name, func(t *testing.T) { decodeCheckLikeProto(t, tc.b) })
	}
}

// TestDecodeCheckCases guards the cases: the ones named for an error are
// ones proto.Unmarshal rejects, and the rest it reads (so that the
// equivalence above compares what it means to).
func TestDecodeCheckCases(t *testing.T) {
	malformed := map[string]bool{}
	for _, n := range []string{"truncated", "truncated inside a field not read", "bad varint", "field number 0", "field number too large",
		"end group at top level", "end group in a message", "group not closed", "group closed by another number", "wire type 6",
		"wire type 7 on a read field", "end group in a header entry", "field number 0 in a header entry"} {
		malformed[n] = true
	}
	for _, tc := range wireCases(t) {
		bad := strings.HasPrefix(tc.name, "not UTF-8") && !strings.HasSuffix(tc.name, "is bytes") ||
			strings.Contains(tc.name, "past the recursion limit") || tc.name == "nesting: 0 levels left, then a map of the wrong wire type" ||
			tc.name == "nesting: 2 levels left, then a header map entry" || // an entry key that is not UTF-8
			malformed[tc.name]
		err := proto.Unmarshal(tc.b, new(authv3.CheckRequest))
		if (err != nil) != bad {
			t.Errorf("proto.Unmarshal(%s) = %v, want an error: %v", tc.name, err, bad)
		}
	}
}

// TestDecodeCheckReads pins what decodeCheck reads of a few cases, so that
// the reference itself is checked: merged messages, the last value
// winning, a header entry without a key.
func TestDecodeCheckReads(t *testing.T) {
	cases := map[string]struct {
		method, path, body string
		headers            map[string]string
	}{
		"http twice in one request, merged":      {"POST", "/p1", turkish, map[string]string{"a": "2", "b": emoji}},
		"raw_body emptied by a later value":      {"", "", combining, nil},
		"header entry without key":               {"", "", "", map[string]string{"": arabic}},
		"header entry key twice, value twice":    {"", "", "", map[string]string{"content-type": "text/plain"}},
		"wrong wire types are unknown fields":    {"", "/api/send-message", "", map[string]string{"": "v"}},
		"unknown fields at every level":          {"POST", "", "", map[string]string{"k": "v"}},
		"not UTF-8: raw_body is bytes":           {"", "", "\xff\xfe", nil},
		"duplicate header key, last wins":        {"", "", "", map[string]string{headerPartialBody: "false"}},
		"envoy send, Hindi in body not raw_body": {"POST", "/api/send-message", sendBody("inst_12345", recipient, hindi, "transactional"), nil},
		"captured envoy-check-2.bin":             {"POST", "/api/send-message", `{"instance_id":"inst_12345","phone":"+919812345678","message":"नमस्ते, आपका सत्यापन कोड 4821 है 🙏 İı e\u0301"}`, nil},
	}
	for _, tc := range wireCases(t) {
		want, ok := cases[tc.name]
		if !ok {
			continue
		}
		got, err := decodeCheck(bytes.Clone(tc.b))
		if err != nil {
			t.Fatalf("decodeCheck(%s) error = %v", tc.name, err)
		}
		if want.headers == nil {
			want.headers = requestHeaders(got) // not pinned
		}
		if got.Method != want.method || got.Path != want.path || string(got.Body) != want.body || !reflect.DeepEqual(requestHeaders(got), want.headers) {
			t.Errorf("decodeCheck(%s) = %q %q %q %v, want %q %q %q %v", tc.name, got.Method, got.Path, got.Body, requestHeaders(got),
				want.method, want.path, want.body, want.headers)
		}
	}
}

// TestDecodeCheckSchema: what decodeCheck assumes of the CheckRequest's
// schema holds for every message it can contain: proto3 throughout (every
// string must be UTF-8), no groups (it skips one without looking inside),
// no repeated scalars (it does not check packed data), no lazy fields
// (proto.Unmarshal would check them later), no extension ranges.
func TestDecodeCheckSchema(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		if md.ExtensionRanges().Len() > 0 {
			t.Errorf("%s has extension ranges", md.FullName())
		}
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if fd.Kind() == protoreflect.GroupKind {
				t.Errorf("%s is a group", fd.FullName())
			}
			if fd.Syntax() != protoreflect.Proto3 {
				t.Errorf("%s is not proto3: is a string in it checked for UTF-8?", fd.FullName())
			}
			if fd.IsList() && fd.Message() == nil {
				t.Errorf("%s is a repeated scalar: it may be packed, and decodeCheck does not check packed data", fd.FullName())
			}
			if l, ok := fd.(interface{ IsLazy() bool }); ok && l.IsLazy() {
				t.Errorf("%s is lazy", fd.FullName())
			}
			if fd.Message() != nil {
				walk(fd.Message())
			}
		}
	}
	walk(mdCheckRequest)
	if len(seen) < 15 {
		t.Errorf("walked %d messages, want the whole tree", len(seen))
	}
}

// FuzzWireCheckRequest: for any input, decodeCheck reads what
// requestOf(proto.Unmarshal) reads and errs exactly when it errs. The
// seeds are wireCases, with the requests in testdata/envoy-check-*.bin:
// sends captured from Envoy 1.40 running envoy/sidecar.yaml (Arabic,
// Hindi and Turkish bodies and headers; HTTP/1.1, chunked, HTTP/2).
func FuzzWireCheckRequest(f *testing.F) {
	for _, tc := range wireCases(f) {
		if len(tc.b) < 4<<10 { // not the deep nestings: TestDecodeCheck has them, and they slow the mutator down
			f.Add(tc.b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { decodeCheckLikeProto(t, b) })
}

// rawCodec sends and receives bytes as they are: a client that sends
// malformed wire data.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// TestCheckOverTheWire: the wire-decoding server answers every request
// as gRPC's standard one (authv3.RegisterAuthorizationServer, proto.Unmarshal)
// does, from many goroutines at once: multilingual sends allowed and
// denied, merged and duplicated fields, and malformed requests, which fail
// with the same status (code and message) as before.
func TestCheckOverTheWire(t *testing.T) {
	unlimited := limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}
	dial := func(wire bool) *grpc.ClientConn {
		d, _, _ := newDecider(t, unlimited)
		if !wire {
			gs := grpc.NewServer()
			authv3.RegisterAuthorizationServer(gs, NewServer(d, nil))
			return serveBufconn(t, gs)
		}
		gs := grpc.NewServer(ServerCodec())
		NewServer(d, nil).Register(gs)
		return serveBufconn(t, gs)
	}
	wire, std := dial(true), dial(false)
	var reqs [][]byte
	for _, msg := range []string{arabic, hindi, turkish, emoji, combining} {
		for _, purpose := range []string{"transactional", "marketing", ""} {
			r := envoyRequest(msg)
			r.Attributes.Request.Http.RawBody = []byte(sendBody("inst_12345", recipient, msg, purpose))
			reqs = append(reqs, marshal(t, r))
		}
		r := envoyRequest(msg)
		r.Attributes.Request.Http.Headers["authorization"] = "Bearer nope"
		reqs = append(reqs, marshal(t, r))
		// Merged with a second CheckRequest that holds only a header: the
		// key must be read from the first and the last authorization
		// must win for the send to be allowed.
		second := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{"x-second": turkish}}}}}
		reqs = append(reqs, append(marshal(t, envoyRequest(msg)), marshal(t, second)...))
		second.Attributes.Request.Http.Headers["authorization"] = "Bearer key-demo"
		reqs = append(reqs, append(marshal(t, r), marshal(t, second)...))
	}
	for _, tc := range wireCases(t) {
		reqs = append(reqs, tc.b)
	}
	call := func(conn *grpc.ClientConn, b []byte) (string, error) {
		var out []byte
		err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, &b, &out, grpc.ForceCodecV2(rawCodec{}))
		var resp authv3.CheckResponse
		if err == nil {
			if err := proto.Unmarshal(out, &resp); err != nil {
				t.Errorf("response: %v", err)
			}
		}
		return answer(&resp), err
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range len(reqs) {
				b := reqs[(g+i)%len(reqs)]
				got, err := call(wire, b)
				want, werr := call(std, b)
				if got != want || status.Code(err) != status.Code(werr) || status.Convert(err).Message() != status.Convert(werr).Message() {
					t.Errorf("Check(%q) over the wire = %s, %v; want %s, %v", b, got, err, want, werr)
					return
				}
			}
		})
	}
	wg.Wait()
}

// answer is a CheckResponse without its decision ids: the status, and the
// denial's HTTP status and body or the allow's headers for the sender.
func answer(r *authv3.CheckResponse) string {
	if d := r.GetDeniedResponse(); d != nil {
		return fmt.Sprintf("denied %d %s", d.GetStatus().GetCode(), d.GetBody())
	}
	h := headerMap(r.GetOkResponse().GetHeaders())
	delete(h, HeaderDecisionID)
	return fmt.Sprintf("status %d ok %v remove %v", r.GetStatus().GetCode(), h, r.GetOkResponse().GetHeadersToRemove())
}

// BenchmarkDecodeCheck reads a send Envoy sent (testdata/envoy-check-1.bin)
// from the wire: decodeCheck, and what the standard codec did before it,
// proto.Unmarshal and requestOf. Both include gRPC's copy of the message.
func BenchmarkDecodeCheck(b *testing.B) {
	msg, err := os.ReadFile("testdata/envoy-check-1.bin")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeCheck(bytes.Clone(msg)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m authv3.CheckRequest
			if err := proto.Unmarshal(bytes.Clone(msg), &m); err != nil {
				b.Fatal(err)
			}
			_ = requestOf(&m)
		}
	})
}

// TestRegisterWithoutServerCodec: a server built without ServerCodec
// fails every Check with codes.Internal (Envoy then answers 503
// policy_check_unavailable), never decides from a request it did not read.
func TestRegisterWithoutServerCodec(t *testing.T) {
	d, _, _ := newDecider(t, limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 5})
	gs := grpc.NewServer()
	NewServer(d, nil).Register(gs)
	conn := serveBufconn(t, gs)
	req := checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), req)
	if status.Code(err) != codes.Internal {
		t.Errorf("Check without ServerCodec = %v, %v; want codes.Internal", resp, err)
	}
}

// TestDecodeCheckAllocations: reading a send Envoy sent (14 headers,
// addresses, metadata) allocates only the headers map, at its size (the
// copy of the message is the codec's: one more). proto.Unmarshal and
// requestOf made 130 allocations of it.
func TestDecodeCheckAllocations(t *testing.T) {
	msg, err := os.ReadFile("testdata/envoy-check-1.bin")
	if err != nil {
		t.Fatal(err)
	}
	got := testing.AllocsPerRun(100, func() {
		if _, err := decodeCheck(msg); err != nil {
			t.Fatal(err)
		}
	})
	if got > 1 {
		t.Errorf("decodeCheck(envoy-check-1.bin) = %.0f allocations, want at most 1 (the list of headers; a map of them took 5)", got)
	}
}
