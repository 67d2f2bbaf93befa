package authz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/store"
)

// AttrDecisionID is the ext_proc response attribute (a CEL expression
// Envoy evaluates, see envoy/sidecar.yaml) that carries the decision id to
// the response path: the x-sendguard-decision-id request header that Check
// set on an allowed send. The header_mutation filter removes every client
// x-sendguard-* header before ext_authz runs and Check overwrites (send
// path) or removes (any other path) this one, so a client cannot forge it:
// a response whose request carries it belongs to an allowed send.
const AttrDecisionID = "request.headers['x-sendguard-decision-id']"

// AttrInstance is the ext_proc response attribute that carries the
// instance of an allowed send (the x-sendguard-instance-id request header
// Check set, unforgeable as AttrDecisionID is): a refund's receipt is the
// instance's and the decision id's together.
const AttrInstance = "request.headers['x-sendguard-instance-id']"

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
//
// With refunds on (WithRefunds), a failed send, the sender's failure
// status or Envoy's own 5xx local reply (connect failure, reset, timeout),
// also gives back what its decision took: Refund on the store, keyed by
// the instance and the decision id, both set by Check and unforgeable. It
// runs before the answer (so a client retrying at once finds its quota),
// detached from the stream's cancellation (Envoy giving up on the stream
// does not cut a refund short), and is logged and counted by result. A
// refund the store fails is tried again in the background (see refund).
type ResponseServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	failures []int // sorted; read only after NewResponseServer
	log      *slog.Logger
	m        *responseMetrics
	refunds  Refunder
	now      func() time.Time
	dlog     RefundLog

	retryWaits []time.Duration // before each further try of a failed refund; read only
	retrying   chan struct{}   // a slot per refund being tried again
}

// maxRefundRetries bounds the failed refunds being tried again at once;
// one beyond it is counted an error at once.
const maxRefundRetries = 64

// RefundLog records refunds in the decision log (decisionlog.Logger).
type RefundLog interface {
	LogRefund(at time.Time, decisionID, instance, result string, status int, by string, err error)
}

// WithRefundLog records each refund in l too (nil: none).
func (s *ResponseServer) WithRefundLog(l RefundLog) *ResponseServer {
	s.dlog = l
	return s
}

// Refunder gives back what an allowed send took (store.Memory,
// store.Embedded and store.Redis implement it).
type Refunder interface {
	Refund(ctx context.Context, instance, decisionID string, now time.Time) (store.RefundResult, error)
}

type responseMetrics struct {
	replaced *prometheus.CounterVec
	refunds  *prometheus.CounterVec
}

// NewResponseServer returns a ResponseServer replacing the responses whose
// status is in failures, logging to log (nil: discard).
func NewResponseServer(failures []int, log *slog.Logger) *ResponseServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := slices.Clone(failures)
	slices.Sort(f)
	return &ResponseServer{failures: f, log: log, now: time.Now,
		// A failed refund's further tries, 2.1 s in all: a store slow for
		// a moment (a loaded machine, a Redis failover under way) mostly
		// answers within them.
		retryWaits: []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond},
		retrying:   make(chan struct{}, maxRefundRetries)}
}

// WithRefunds makes a failed send give back what its decision took, from
// r, at now (nil: time.Now).
func (s *ResponseServer) WithRefunds(r Refunder, now func() time.Time) *ResponseServer {
	if now == nil {
		now = time.Now
	}
	s.refunds, s.now = r, now
	return s
}

// WithMetrics registers on reg:
//
//	sendguard_send_failures_total{by,status}  allowed sends that failed, by
//	        the status Envoy passed on: by="sender", the sender answered a
//	        failure status (replaced by gateway_send_failed); by="envoy",
//	        Envoy's own upstream failure (connect, reset, timeout: its local
//	        reply already answered gateway_send_failed)
//	sendguard_refunds_total{result}  refunds of failed sends: refunded (given
//	        back), unknown (no receipt: expired, or an id that took
//	        nothing), duplicate (refunded before), error (the store failed
//	        the first try and the three more: the send stays counted; the
//	        log has its decision id), skipped (a failed take's refund not
//	        tried: too many in flight)
func (s *ResponseServer) WithMetrics(reg prometheus.Registerer) *ResponseServer {
	s.m = &responseMetrics{replaced: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_send_failures_total",
		Help: "Allowed sends that failed, answered 502 gateway_send_failed: by=sender, the sender answered a failure status (response.failure_statuses); by=envoy, Envoy could not reach the sender, was reset or timed out. status is the status Envoy passed on.",
	}, []string{"by", "status"})}
	s.m.refunds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_refunds_total",
		Help: "Refunds of allowed sends that failed, of sends Envoy gave up on, and of sends whose store take failed, by result: refunded (quota, tokens and abuse counts given back), unknown (no receipt), duplicate (refunded before), error (the store failed; the send stays counted), skipped (a failed take's refund not tried: too many in flight).",
	}, []string{"result"})
	for _, st := range s.failures {
		s.m.replaced.WithLabelValues("sender", strconv.Itoa(st)) // export zeros
	}
	for _, r := range []string{store.Refunded.String(), store.RefundUnknown.String(), store.RefundDuplicate.String(), "error", "skipped"} {
		s.m.refunds.WithLabelValues(r) // export zeros: an alert on increase() sees the first error
	}
	reg.MustRegister(s.m.replaced, s.m.refunds)
	return s
}

// skipped counts a refund not tried, and logs it.
func (s *ResponseServer) skipped(by string) {
	s.log.Warn("refund skipped: too many in flight; the send may stay counted", "by", by)
	if s.m != nil {
		s.m.refunds.WithLabelValues("skipped").Inc()
	}
}

// refund gives back what decision id of instance took, logs and counts
// the result. When the store fails it, the refund is tried again in the
// background after each of retryWaits (at most maxRefundRetries at once),
// and counted once, with the last try's result: the receipt makes a retry
// safe, and a retry that finds the refund done counts it refunded (the try
// whose reply was lost had reached the store). Drain waits for the retries
// at shutdown; one still waiting when the process stops is lost, and the
// send stays counted, as a refund the store failed.
func (s *ResponseServer) refund(ctx context.Context, instance, id string, status int, by string) {
	if s.refunds == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	res, err := s.refunds.Refund(ctx, instance, id, now)
	if err != nil {
		select {
		case s.retrying <- struct{}{}:
			s.log.WarnContext(ctx, "refund failed: trying again", "decision_id", id, "instance_id", instance, "status", status, "by", by, "err", err)
			go func() {
				defer func() { <-s.retrying }()
				res, err := s.retry(ctx, instance, id, now, err)
				s.record(ctx, now, instance, id, status, by, res, err)
			}()
			return
		default: // too many being tried again: this one is an error now
		}
	}
	s.record(ctx, now, instance, id, status, by, res, err)
}

// Drain waits, until ctx is done, for the failed refunds being tried again,
// and then takes every slot, so that a refund failing after it is counted
// an error at once: call it after the gRPC server has stopped, before the
// store closes. It returns ctx's error, with how many retries were still
// waiting, when ctx ends first; those sends stay counted.
func (s *ResponseServer) Drain(ctx context.Context) error {
	for n := range cap(s.retrying) {
		select {
		case s.retrying <- struct{}{}:
		case <-ctx.Done():
			// The buffer holds the n slots taken here and one per retry.
			return fmt.Errorf("%d failed refunds still being tried again: %w", len(s.retrying)-n, ctx.Err())
		}
	}
	return nil
}

// retry tries a failed refund again after each of retryWaits, until the
// store answers; err is the first try's error, returned if none answers.
func (s *ResponseServer) retry(ctx context.Context, instance, id string, now time.Time, err error) (store.RefundResult, error) {
	for _, wait := range s.retryWaits {
		time.Sleep(wait)
		res, rerr := s.refunds.Refund(ctx, instance, id, now)
		if rerr == nil {
			if res == store.RefundDuplicate {
				res = store.Refunded // a failed try reached the store
			}
			return res, nil
		}
		err = rerr
	}
	return store.RefundUnknown, err
}

// record logs and counts a refund's result.
func (s *ResponseServer) record(ctx context.Context, now time.Time, instance, id string, status int, by string, res store.RefundResult, err error) {
	result := res.String()
	if err != nil {
		result = "error"
		s.log.ErrorContext(ctx, "refund failed: the failed send stays counted", "decision_id", id, "instance_id", instance, "status", status, "by", by, "err", err)
	} else {
		s.log.InfoContext(ctx, "refund", "decision_id", id, "instance_id", instance, "status", status, "by", by, "result", result)
	}
	if s.m != nil {
		s.m.refunds.WithLabelValues(result).Inc()
	}
	if s.dlog != nil {
		s.dlog.LogRefund(now, id, instance, result, status, by, err)
	}
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
		details := attr(req, AttrCodeDetails)
		envoy := details != "" && details != "via_upstream"
		if id == "" || !(s.failed(st) || envoy && st >= 500) {
			return continueResponseHeaders
		}
		if envoy {
			// Envoy's own answer: the sender could not be reached, reset
			// or timed out. The local reply mapper already answered the
			// documented 502; refund and count it, change nothing.
			s.log.WarnContext(ctx, "send failed before the sender answered", "decision_id", id, "status", st, "envoy_details", details)
			s.count("envoy", st)
			s.refund(ctx, attr(req, AttrInstance), id, st, "envoy")
			return continueResponseHeaders
		}
		s.log.WarnContext(ctx, "send failed at the sender: answered gateway_send_failed", "decision_id", id, "sender_status", st)
		s.count("sender", st)
		s.refund(ctx, attr(req, AttrInstance), id, st, "sender")
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
