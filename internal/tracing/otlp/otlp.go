// Package otlp runs sendguard's tracing: an OpenTelemetry tracer provider
// exporting over OTLP/gRPC through a batch span processor, the W3C trace
// context propagator, and the gRPC server's stats handler (otelgrpc). serve
// builds one Provider when tracing is configured (config.Tracing) and shuts
// it down, flushing, when it stops.
package otlp

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/sendguard/sendguard/internal/tracing"
)

// Options configure a Provider. Endpoint is required.
type Options struct {
	Endpoint    string  // the collector's OTLP/gRPC host:port
	Insecure    bool    // plaintext gRPC; otherwise TLS with the system roots (or OTEL_EXPORTER_OTLP_CERTIFICATE)
	SampleRatio float64 // share of new traces sampled; a parent's sampled flag is followed
	ServiceName string
	Version     string // service.version
}

// Provider is a running tracer provider. Its methods are safe for
// concurrent use.
type Provider struct {
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
}

// New starts a Provider exporting to o.Endpoint. It does not wait for the
// collector: spans wait in the batch processor's queue (and are dropped
// when it is full), and the exporter retries.
func New(ctx context.Context, o Options) (*Provider, error) {
	if o.Endpoint == "" {
		return nil, fmt.Errorf("tracing: an endpoint is required")
	}
	// As a URL, so that the scheme sets TLS or plaintext whatever the
	// process's OTEL_EXPORTER_OTLP_* variables say (config.Tracing.Resolve
	// has read them already).
	scheme := "https"
	if o.Insecure {
		scheme = "http"
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(scheme+"://"+o.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", o.ServiceName)}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return &Provider{tp: tp, prop: propagation.TraceContext{}}, nil
}

// Tracer is the tracer of sendguard's own spans.
func (p *Provider) Tracer() trace.Tracer {
	return p.tp.Tracer(tracing.ScopeName)
}

// Propagator is the W3C trace context propagator (traceparent,
// tracestate), the one Envoy's OpenTelemetry tracer speaks.
func (p *Provider) Propagator() propagation.TextMapPropagator { return p.prop }

// Shutdown exports the spans still queued and stops the exporter; ctx
// bounds the wait.
func (p *Provider) Shutdown(ctx context.Context) error {
	return p.tp.Shutdown(ctx)
}

// ServerHandler is otelgrpc's server stats handler for the gRPC server,
// tracing only the RPCs whose metadata carries a W3C trace context: that
// is Envoy's ext_authz span when Envoy itself traces, and otelgrpc's span
// then sits between it and the Check span (see authz.Server.WithTracing).
// An RPC without one (Envoy does not trace; the client's traceparent is
// in the CheckRequest's headers instead) and health checks get no span
// here, so no trace of one gRPC span starts for every request.
func (p *Provider) ServerHandler() stats.Handler {
	return &fromMetadata{
		h: otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(p.tp), otelgrpc.WithPropagators(p.prop),
			otelgrpc.WithMeterProvider(noop.NewMeterProvider())), // metrics are Prometheus's
		prop: p.prop,
	}
}

type fromMetadata struct {
	h    stats.Handler
	prop propagation.TextMapPropagator
}

type tracedRPC struct{}

func (f *fromMetadata) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/") {
		return ctx
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if !trace.SpanContextFromContext(f.prop.Extract(ctx, metadataCarrier(md))).IsValid() {
		return ctx
	}
	return context.WithValue(f.h.TagRPC(ctx, info), tracedRPC{}, true)
}

func (f *fromMetadata) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if ctx.Value(tracedRPC{}) != nil {
		f.h.HandleRPC(ctx, s)
	}
}

func (f *fromMetadata) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	return f.h.TagConn(ctx, info)
}

func (f *fromMetadata) HandleConn(ctx context.Context, s stats.ConnStats) { f.h.HandleConn(ctx, s) }

// metadataCarrier reads gRPC metadata as a propagation.TextMapCarrier.
type metadataCarrier metadata.MD

func (m metadataCarrier) Get(key string) string {
	if v := metadata.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (m metadataCarrier) Set(key, value string) { metadata.MD(m).Set(key, value) }

func (m metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
