package authz

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/internal/catalog"
)

// AttrDecisionID is the ext_proc response attribute (a CEL expression
// Envoy evaluates, see envoy/sidecar.yaml) that carries the decision id to
// the response path: the x-sendguard-decision-id request header that Check
// set on an allowed send. The header_mutation filter removes every client
// x-sendguard-* header before ext_authz runs and Check overwrites (send
// path) or removes (any other path) this one, so a client cannot forge it:
// a response whose request carries it belongs to an allowed send.
const AttrDecisionID = "request.headers['x-sendguard-decision-id']"

// AttrCodeDetails is the ext_proc response attribute telling the sender's
// answer ("via_upstream") from Envoy's own local reply (an upstream
// connect failure, reset or timeout).
const AttrCodeDetails = "response.code_details"

// extProcAttrs is the key under which Envoy's ext_proc filter puts its
// attributes in a ProcessingRequest.
const extProcAttrs = "envoy.filters.http.ext_proc"

// ResponseServer implements envoy.service.ext_proc.v3.ExternalProcessor for
// the response path of a send: Envoy sends it the response headers only
// (processing mode: response headers SEND, everything else SKIP or NONE,
// no body buffered). When the request was an allowed send (it carries the
// decision id, see AttrDecisionID) and the sender answered one of the
// failure statuses, the response is replaced by the documented 502
// gateway_send_failed JSON, byte for byte, with content-type
// application/json and the decision id; the sender's status is logged (at
// warn, with the decision id) and counted, never shown to the client. Any
// other response passes unchanged. A ResponseServer is safe for concurrent
// use and holds no state between streams.
type ResponseServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	failures []int // sorted; read only after NewResponseServer
	log      *slog.Logger
	m        *responseMetrics
}

type responseMetrics struct {
	replaced *prometheus.CounterVec
}

// NewResponseServer returns a ResponseServer replacing the responses whose
// status is in failures, logging to log (nil: discard).
func NewResponseServer(failures []int, log *slog.Logger) *ResponseServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := slices.Clone(failures)
	slices.Sort(f)
	return &ResponseServer{failures: f, log: log}
}

// WithMetrics registers on reg:
//
//	sendguard_send_failures_total{by,status}  allowed sends that failed, by
//	        the status Envoy passed on: by="sender", the sender answered a
//	        failure status (replaced by gateway_send_failed); by="envoy",
//	        Envoy's own upstream failure (connect, reset, timeout: its local
//	        reply already answered gateway_send_failed)
func (s *ResponseServer) WithMetrics(reg prometheus.Registerer) *ResponseServer {
	s.m = &responseMetrics{replaced: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_send_failures_total",
		Help: "Allowed sends that failed, answered 502 gateway_send_failed: by=sender, the sender answered a failure status (response.failure_statuses); by=envoy, Envoy could not reach the sender, was reset or timed out. status is the status Envoy passed on.",
	}, []string{"by", "status"})}
	for _, st := range s.failures {
		s.m.replaced.WithLabelValues("sender", strconv.Itoa(st)) // export zeros
	}
	reg.MustRegister(s.m.replaced)
	return s
}

// Process serves one ext_proc stream (one HTTP request). It answers every
// message Envoy sends; it returns when Envoy closes the stream.
func (s *ResponseServer) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if grpcstatus.Code(err) == codes.Canceled || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := stream.Send(s.answer(ctx, req)); err != nil {
			return err
		}
	}
}

// answer is the response to one ProcessingRequest: continue, unless it is
// the response headers of an allowed send that failed.
func (s *ResponseServer) answer(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		id := decisionIDOf(req)
		st := statusOf(r.ResponseHeaders.GetHeaders())
		if id == "" || !s.failed(st) {
			return continueResponseHeaders
		}
		if details := attr(req, AttrCodeDetails); details != "" && details != "via_upstream" {
			// Envoy's own answer: the sender could not be reached, reset
			// or timed out. The local reply mapper already answered the
			// documented 502; count it, change nothing.
			s.log.WarnContext(ctx, "send failed before the sender answered", "decision_id", id, "status", st, "envoy_details", details)
			s.count("envoy", st)
			return continueResponseHeaders
		}
		s.log.WarnContext(ctx, "send failed at the sender: answered gateway_send_failed", "decision_id", id, "sender_status", st)
		s.count("sender", st)
		return sendFailed(id)
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return &extprocv3.ProcessingResponse{}
}

func (s *ResponseServer) count(by string, status int) {
	if s.m != nil {
		s.m.replaced.WithLabelValues(by, strconv.Itoa(status)).Inc()
	}
}

func (s *ResponseServer) failed(status int) bool {
	_, ok := slices.BinarySearch(s.failures, status)
	return ok
}

// continueResponseHeaders leaves the response as it is; gRPC only reads it.
var continueResponseHeaders = &extprocv3.ProcessingResponse{
	Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}},
}

var gatewaySendFailedBody = catalog.Body(catalog.GatewaySendFailed, catalog.Details{})

func sendFailed(id string) *extprocv3.ProcessingResponse {
	e, _ := catalog.Lookup(catalog.GatewaySendFailed)
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(e.Status)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			set("content-type", "application/json"),
			set(HeaderDecisionID, id),
		}},
		Body:    gatewaySendFailedBody,
		Details: "sendguard_send_failed",
	}}}
}

// decisionIDOf is the decision id Envoy evaluated for AttrDecisionID, or
// "" when the request carried none (not an allowed send).
func decisionIDOf(req *extprocv3.ProcessingRequest) string { return attr(req, AttrDecisionID) }

// attr is the string attribute name of req, or "".
func attr(req *extprocv3.ProcessingRequest, name string) string {
	return req.GetAttributes()[extProcAttrs].GetFields()[name].GetStringValue()
}

// statusOf is the response's :status, or 0.
func statusOf(h *corev3.HeaderMap) int {
	for _, hv := range h.GetHeaders() {
		if hv.GetKey() != ":status" {
			continue
		}
		v := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}
