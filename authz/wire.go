package authz

import (
	"context"
	"errors"
	"unicode/utf8"
	"unsafe"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sendguard/sendguard/internal/decision"
)

// The gRPC server reads a CheckRequest straight from the wire: of the
// whole AttributeContext (peers, addresses, metadata, ~15 headers) Check
// uses the HTTP method, path, body and headers, so decodeCheck reads those
// as views of one copy of the message and checks the rest without building
// it. proto.Unmarshal built every message, string and map of it: ~13 % of
// the server's CPU and most of a Check's allocations under load.
//
// Register and ServerCodec wire it in; Check (a *authv3.CheckRequest, for
// in-process callers) and the wire path meet in Server.check, so they
// cannot decide differently.

// ServerCodec is the grpc.ServerOption to build a server for Register
// with: it decodes the Check method's request with decodeCheck, writes its
// response with marshalCheckResponse, and hands every other message
// (ext_proc, health) to gRPC's proto codec unchanged.
func ServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(codec{encoding.GetCodecV2(proto.Name)})
}

// Workers is how many goroutines serve gRPC calls on a server built with
// ServerOptions (grpc.NumStreamWorkers): more than the calls Envoy keeps in
// flight at once on one sidecar.
const Workers = 256

// ServerOptions are the options of the gRPC server serve runs Register's
// service on, followed by extra: ServerCodec, and calls run on Workers
// long-lived goroutines rather than a goroutine each. A decision needs
// about 32 KB of stack, and growing a fresh goroutine's stack that far
// (copying it three times) costs more than the decision: 6-8 % of the CPU
// under load, and a fifth of an allowed Check's instructions over the
// in-memory wire (61 k of 313 k, counted by callgrind). A call
// that finds every worker busy still gets its own goroutine, so the count
// bounds nothing.
func ServerOptions(extra ...grpc.ServerOption) []grpc.ServerOption {
	return append([]grpc.ServerOption{grpc.NumStreamWorkers(Workers), ServerCodec()}, extra...)
}

// Register registers s as envoy.service.auth.v3.Authorization on gs, its
// Check method decoding the request from the wire. gs must have been built
// with ServerCodec (without it every Check fails with codes.Internal). A
// unary interceptor on gs sees a request of an unexported type, not a
// *authv3.CheckRequest; stats handlers (otelgrpc) see the call as before.
func (s *Server) Register(gs *grpc.Server) {
	gs.RegisterService(&checkService, s)
}

// checkService is authv3.Authorization_ServiceDesc with a Check handler
// that decodes into a wireRequest.
var checkService = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: authv3.Authorization_ServiceDesc.HandlerType,
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// wireRequest is what the Check handler decodes into: the decision.Request
// of a CheckRequest, read by decodeCheck.
type wireRequest struct{ req decision.Request }

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wireRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.check(ctx, in.req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.check(ctx, req.(*wireRequest).req)
	})
}

// codec is gRPC's proto codec, except that it decodes a wireRequest with
// decodeCheck.
type codec struct{ proto encoding.CodecV2 }

func (c codec) Name() string { return c.proto.Name() }

// Marshal writes a CheckResponse with marshalCheckResponse (encode.go):
// proto.Marshal's bytes without its reflection. Anything else, and a
// response that declines, goes to the proto codec.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*authv3.CheckResponse); ok {
		if b, ok := marshalCheckResponse(r); ok {
			// The slice and its one buffer in one allocation: a
			// SliceBuffer in an interface would be a third.
			o := &marshalled{buf: b}
			o.slice[0] = &o.buf
			return o.slice[:], nil
		}
	}
	return c.proto.Marshal(v)
}

// marshalled is what Marshal returns a response's bytes in.
type marshalled struct {
	slice [1]mem.Buffer
	buf   mem.SliceBuffer
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	w, ok := v.(*wireRequest)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	// One copy: gRPC recycles data's buffers once this returns, and the
	// request's strings are views of b.
	b := data.Materialize()
	req, err := decodeCheck(b)
	if err != nil {
		// The RPC fails with proto.Unmarshal's own error, word for word
		// (decodeCheck errs exactly when it does; should that ever not
		// hold, the request is read the old way rather than refused).
		var m authv3.CheckRequest
		if perr := protov2.Unmarshal(b, &m); perr != nil {
			return perr
		}
		req = requestOf(&m)
	}
	w.req = req
	return nil
}

// Errors of decodeCheck. Only whether there is one matters: the codec
// answers with proto.Unmarshal's.
var (
	errWire      = errors.New("cannot parse invalid wire-format data")
	errWireUTF8  = errors.New("string field contains invalid UTF-8")
	errWireDepth = errors.New("exceeded maximum recursion depth")
)

// Message descriptors of the path decodeCheck reads.
var (
	mdCheckRequest = (*authv3.CheckRequest)(nil).ProtoReflect().Descriptor()
	mdAttributes   = (*authv3.AttributeContext)(nil).ProtoReflect().Descriptor()
	mdRequest      = (*authv3.AttributeContext_Request)(nil).ProtoReflect().Descriptor()
	mdHTTP         = (*authv3.AttributeContext_HttpRequest)(nil).ProtoReflect().Descriptor()
)

// Field numbers decodeCheck reads.
const (
	fieldAttributes = 1  // CheckRequest.attributes
	fieldRequest    = 4  // AttributeContext.request
	fieldHTTP       = 2  // AttributeContext.Request.http
	fieldMethod     = 2  // HttpRequest.method
	fieldHeaders    = 3  // HttpRequest.headers
	fieldPath       = 4  // HttpRequest.path
	fieldBody       = 11 // HttpRequest.body
	fieldRawBody    = 12 // HttpRequest.raw_body
)

// httpFields is what decodeCheck collects of the HttpRequest, the fields
// merged as proto.Unmarshal merges them: a scalar field's last value
// wins, map entries accumulate (a duplicate key's last wins).
type httpFields struct {
	method, path, body string
	rawBody            []byte
	headers            []decision.Header // the map's entries in order: a key's last counts

	// inline holds the headers of a request with up to as many: decodeCheck's
	// httpFields is on the heap (the field functions' indirect calls take
	// its address), and the list of headers then takes no allocation of
	// its own (nor a pass to count them first).
	inline [24]decision.Header
}

// decodeCheck reads the decision.Request of the CheckRequest b encodes,
// exactly as requestOf(m) after proto.Unmarshal(b, m) would, and fails
// exactly when proto.Unmarshal fails (malformed wire data, a string that
// is not UTF-8, nesting deeper than its recursion limit), in any field,
// read or not. The request's strings and body are views of b, which the
// caller hands over: b must never change afterwards.
//
// Proto's rules hold throughout: an embedded message that appears twice is
// merged, the last value of a scalar wins (an empty one too), a field of
// the wrong wire type and an unknown field (a group too) are skipped, a
// map entry may omit its key or value. The fields it does not read are
// walked by their descriptors, without allocating.
func decodeCheck(b []byte) (decision.Request, error) {
	var h httpFields
	if err := decodeMessage(b, mdCheckRequest, protowire.DefaultRecursionLimit, &h, decodeCheckField); err != nil {
		return decision.Request{}, err
	}
	body := h.rawBody
	if body == nil && h.body != "" {
		body = unsafe.Slice(unsafe.StringData(h.body), len(h.body))
	}
	return httpRequest(h.method, h.path, body, nil, h.headers), nil
}

// fieldFunc decodes one field of a message on the read path: v is its
// value when it has the bytes wire type. It reports false for a field it
// does not read, which decodeMessage then checks against md.
type fieldFunc func(num protowire.Number, v []byte, depth int, h *httpFields) (bool, error)

func decodeCheckField(num protowire.Number, v []byte, depth int, h *httpFields) (bool, error) {
	if num != fieldAttributes {
		return false, nil
	}
	return true, decodeMessage(v, mdAttributes, depth, h, decodeAttributesField)
}

func decodeAttributesField(num protowire.Number, v []byte, depth int, h *httpFields) (bool, error) {
	if num != fieldRequest {
		return false, nil
	}
	return true, decodeMessage(v, mdRequest, depth, h, decodeRequestField)
}

func decodeRequestField(num protowire.Number, v []byte, depth int, h *httpFields) (bool, error) {
	if num != fieldHTTP {
		return false, nil
	}
	if h.headers == nil {
		h.headers = h.inline[:0] // past len(inline) headers, append moves them
	}
	return true, decodeMessage(v, mdHTTP, depth, h, decodeHTTPField)
}

func decodeHTTPField(num protowire.Number, v []byte, depth int, h *httpFields) (bool, error) {
	switch num {
	case fieldMethod, fieldPath, fieldBody:
		if !utf8.Valid(v) {
			return true, errWireUTF8
		}
		s := view(v)
		switch num {
		case fieldMethod:
			h.method = s
		case fieldPath:
			h.path = s
		default:
			h.body = s
		}
	case fieldRawBody:
		h.rawBody = nil // proto3 bytes: empty reads as nil
		if len(v) > 0 {
			h.rawBody = v[:len(v):len(v)]
		}
	case fieldHeaders:
		if depth-1 < 0 { // a map entry counts towards the recursion limit
			return true, errWireDepth
		}
		return true, decodeHeader(v, h)
	default:
		return false, nil
	}
	return true, nil
}

// decodeHeader adds one entry of the headers map to h.
func decodeHeader(b []byte, h *httpFields) error {
	var key, value string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errWire
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errWire
			}
			if !utf8.Valid(v) {
				return errWireUTF8
			}
			if num == 1 {
				key = view(v)
			} else {
				value = view(v)
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
	}
	h.headers = append(h.headers, decision.Header{Key: key, Value: value})
	return nil
}

// view is v as a string, without copying: v must never change.
func view(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

// decodeMessage walks the message b encodes, of type md, depth levels of
// nesting left: read (nil: none) decodes the fields on the read path, and
// every other field is checked as proto.Unmarshal would check it.
func decodeMessage(b []byte, md protoreflect.MessageDescriptor, depth int, h *httpFields, read fieldFunc) error {
	if depth--; depth < 0 {
		return errWireDepth
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber { // an end group too, below
			return errWire
		}
		b = b[n:]
		if read != nil && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errWire
			}
			ok, err := read(num, v, depth, h)
			if err != nil {
				return err
			}
			if ok {
				b = b[n:]
				continue
			}
		}
		n, err := checkField(fields.ByNumber(num), num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// checkField checks one field of a message that decodeCheck does not
// read, fd nil for an unknown one, and reports its length: what
// proto.Unmarshal rejects in it, it rejects.
func checkField(fd protoreflect.FieldDescriptor, num protowire.Number, typ protowire.Type, b []byte, depth int) (int, error) {
	switch {
	case fd == nil:
	case fd.IsMap():
		if depth-1 < 0 { // before the wire type, as proto.Unmarshal
			return 0, errWireDepth
		}
		if typ != protowire.BytesType {
			break
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, errWire
		}
		return n, checkMapEntry(fd, v, depth-1)
	case fd.Kind() == protoreflect.MessageKind:
		if typ != protowire.BytesType {
			break
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, errWire
		}
		return n, decodeMessage(v, fd.Message(), depth, nil, nil)
	case fd.Kind() == protoreflect.StringKind:
		if typ != protowire.BytesType {
			break
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, errWire
		}
		if !utf8.Valid(v) { // every string is proto3's (TestDecodeCheckSchema)
			return 0, errWireUTF8
		}
		return n, nil
	}
	// A scalar, bytes, or a field of the wrong wire type (then unknown).
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, errWire
	}
	return n, nil
}

// checkMapEntry checks one entry of map field fd, depth levels left for
// its value.
func checkMapEntry(fd protoreflect.FieldDescriptor, b []byte, depth int) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errWire
		}
		b = b[n:]
		var entry protoreflect.FieldDescriptor
		switch num {
		case 1:
			entry = fd.MapKey()
		case 2:
			entry = fd.MapValue()
		}
		n, err := checkField(entry, num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
