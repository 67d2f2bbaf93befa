package authz

import (
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// The gRPC server writes a CheckResponse with marshalCheckResponse rather
// than proto.Marshal: the messages allow and deny build use a handful of
// fields, and proto.Marshal's reflective size and marshal passes over
// them were about 6 % of the server's CPU under load (issue 11).
//
// marshalCheckResponse gives exactly the bytes proto.Marshal gives
// (TestMarshalCheckResponse holds the two to that over every answer
// Check gives), and declines (ok false) for a response with anything it
// does not encode: a field allow and deny never set, a string that is not
// UTF-8 (proto.Marshal fails on it), a nil element of a list. The codec
// then hands the response to proto.Marshal, as before.

// Field numbers marshalCheckResponse writes.
const (
	fieldRespStatus  = 1 // CheckResponse.status
	fieldRespDenied  = 2 // CheckResponse.denied_response
	fieldRespOK      = 3 // CheckResponse.ok_response
	fieldStatusCode  = 1 // google.rpc.Status.code
	fieldStatusMsg   = 2 // google.rpc.Status.message
	fieldDeniedCode  = 1 // DeniedHttpResponse.status
	fieldDeniedHdrs  = 2 // DeniedHttpResponse.headers
	fieldDeniedBody  = 3 // DeniedHttpResponse.body
	fieldHTTPCode    = 1 // envoy.type.v3.HttpStatus.code
	fieldOKHeaders   = 2 // OkHttpResponse.headers
	fieldOKRemove    = 5 // OkHttpResponse.headers_to_remove
	fieldOKRespAdd   = 6 // OkHttpResponse.response_headers_to_add
	fieldOKQueryDel  = 8 // OkHttpResponse.query_parameters_to_remove
	fieldOptHeader   = 1 // HeaderValueOption.header
	fieldOptAction   = 3 // HeaderValueOption.append_action
	fieldOptKeep     = 4 // HeaderValueOption.keep_empty_value
	fieldHeaderKey   = 1 // HeaderValue.key
	fieldHeaderValue = 2 // HeaderValue.value
	fieldHeaderRaw   = 3 // HeaderValue.raw_value
)

// marshalCheckResponse is proto.Marshal(r) for the responses Check gives,
// or ok false for one it does not encode (see above). It writes in one
// pass into a buffer on the stack, each embedded message's length after
// its fields (moved along in the rare case the length takes more than one
// byte), and returns the bytes in one allocation.
func marshalCheckResponse(r *authv3.CheckResponse) (b []byte, ok bool) {
	var scratch [1024]byte
	w, ok := appendCheckResponse(scratch[:0], r)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), w...), true
}

// The append functions write a message's fields in field-number order,
// as proto.Marshal does, each reporting false for what
// marshalCheckResponse declines.

func appendCheckResponse(b []byte, r *authv3.CheckResponse) ([]byte, bool) {
	if r == nil || r.DynamicMetadata != nil {
		return nil, false
	}
	if s := r.Status; s != nil {
		if len(s.Details) > 0 || !utf8.ValidString(s.Message) {
			return nil, false
		}
		var at int
		b, at = beginLen(b, fieldRespStatus)
		b = appendInt32(b, fieldStatusCode, s.Code)
		b = appendString(b, fieldStatusMsg, s.Message)
		b = endLen(b, at)
	}
	return appendHTTPResponse(b, r)
}

func appendHTTPResponse(b []byte, r *authv3.CheckResponse) ([]byte, bool) {
	ok := true
	switch h := r.HttpResponse.(type) {
	case nil:
	case *authv3.CheckResponse_DeniedResponse:
		d := h.DeniedResponse
		if d == nil || !utf8.ValidString(d.Body) {
			return nil, false
		}
		b, at := beginLen(b, fieldRespDenied)
		if d.Status != nil {
			b2, at2 := beginLen(b, fieldDeniedCode)
			b = endLen(appendInt32(b2, fieldHTTPCode, int32(d.Status.Code)), at2)
		}
		if b, ok = appendOptions(b, fieldDeniedHdrs, d.Headers); !ok {
			return nil, false
		}
		b = appendString(b, fieldDeniedBody, d.Body)
		return endLen(b, at), true
	case *authv3.CheckResponse_OkResponse:
		o := h.OkResponse
		if o == nil || o.DynamicMetadata != nil || len(o.QueryParametersToSet) > 0 { //nolint:staticcheck // deprecated, but a field all the same
			return nil, false
		}
		b, at := beginLen(b, fieldRespOK)
		if b, ok = appendOptions(b, fieldOKHeaders, o.Headers); !ok {
			return nil, false
		}
		if b, ok = appendStrings(b, fieldOKRemove, o.HeadersToRemove); !ok {
			return nil, false
		}
		if b, ok = appendOptions(b, fieldOKRespAdd, o.ResponseHeadersToAdd); !ok {
			return nil, false
		}
		if b, ok = appendStrings(b, fieldOKQueryDel, o.QueryParametersToRemove); !ok {
			return nil, false
		}
		return endLen(b, at), true
	default:
		return nil, false
	}
	return b, true
}

// appendOptions appends the repeated field num holding opts.
func appendOptions(b []byte, num protowire.Number, opts []*corev3.HeaderValueOption) ([]byte, bool) {
	for _, o := range opts {
		if o == nil || o.Append != nil { //nolint:staticcheck // deprecated, but a field all the same
			return nil, false
		}
		b2, at := beginLen(b, num)
		b = b2
		if h := o.Header; h != nil {
			if !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value) {
				return nil, false
			}
			b2, at2 := beginLen(b, fieldOptHeader)
			b = appendString(b2, fieldHeaderKey, h.Key)
			b = appendString(b, fieldHeaderValue, h.Value)
			if len(h.RawValue) > 0 {
				b = protowire.AppendTag(b, fieldHeaderRaw, protowire.BytesType)
				b = protowire.AppendBytes(b, h.RawValue)
			}
			b = endLen(b, at2)
		}
		b = appendInt32(b, fieldOptAction, int32(o.AppendAction))
		if o.KeepEmptyValue {
			b = protowire.AppendTag(b, fieldOptKeep, protowire.VarintType)
			b = append(b, 1)
		}
		b = endLen(b, at)
	}
	return b, true
}

// beginLen appends field num's tag and a one-byte placeholder for the
// length of the embedded message that follows; endLen(b, at) writes it.
func beginLen(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

// endLen writes the length of what b holds past at, into the placeholder
// beginLen left before at (the message moves along when its length takes
// more than one byte: proto writes the shortest varint).
func endLen(b []byte, at int) []byte {
	n := len(b) - at
	if n < 0x80 {
		b[at-1] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, k-1)...)
	copy(b[at+k-1:], b[at:at+n])
	protowire.AppendVarint(b[:at-1], uint64(n))
	return b
}

// Proto3 scalars: a zero value is not written.

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func appendStrings(b []byte, num protowire.Number, ss []string) ([]byte, bool) {
	for _, s := range ss { // a repeated string's empty elements are written too
		if !utf8.ValidString(s) {
			return nil, false
		}
		b = protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
	}
	return b, true
}

// appendInt32 appends an int32 or an enum: a negative one takes ten
// bytes, as proto writes it.
func appendInt32(b []byte, num protowire.Number, v int32) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(int64(v)))
}
