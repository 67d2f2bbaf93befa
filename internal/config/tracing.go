package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Tracing configures OpenTelemetry tracing (internal/tracing): a span for
// each Check, its policy evaluation and store calls, and each event
// delivery, exported over OTLP/gRPC with a batch span processor. It is
// off unless an endpoint is named, here or in the standard
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT
// variables (see Resolve); with it off the request path creates nothing.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/gRPC address: host:port, or an
	// http:// (plaintext) or https:// URL with a port.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// Insecure sends without TLS, as an http:// endpoint does.
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the share of new traces sampled, 0 to 1 (default 1).
	// A trace the client started is sampled as its traceparent's flag says.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans; default
	// OTEL_SERVICE_NAME, else sendguard.
	ServiceName string `yaml:"service_name"`
}

// TracingSettings is the tracing configuration resolved with the
// environment.
type TracingSettings struct {
	Enabled     bool
	Endpoint    string // host:port
	Insecure    bool
	SampleRatio float64
	ServiceName string
	// From names where Endpoint came from: tracing.otlp_endpoint, or the
	// variable.
	From string
}

// The OpenTelemetry variables Resolve reads (the exporter itself also
// reads OTEL_EXPORTER_OTLP_HEADERS, _CERTIFICATE, _COMPRESSION and
// _TIMEOUT, and the SDK OTEL_BSP_*).
const (
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesInsecure = "OTEL_EXPORTER_OTLP_TRACES_INSECURE"
	envInsecure       = "OTEL_EXPORTER_OTLP_INSECURE"
	envServiceName    = "OTEL_SERVICE_NAME"
)

// Resolve returns the tracing settings: the file's values, and for what
// the file leaves unset the standard variables, read through getenv. The
// endpoint is tracing.otlp_endpoint, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// else OTEL_EXPORTER_OTLP_ENDPOINT; none means tracing is off, and so does
// OTEL_SDK_DISABLED=true. Insecure is tracing.insecure, or
// OTEL_EXPORTER_OTLP_TRACES_INSECURE / OTEL_EXPORTER_OTLP_INSECURE = true,
// or an http:// endpoint. A malformed variable is an error naming it.
func (t Tracing) Resolve(getenv func(string) string) (TracingSettings, error) {
	s := TracingSettings{SampleRatio: 1, ServiceName: t.ServiceName, Insecure: t.Insecure}
	if t.SampleRatio != nil {
		s.SampleRatio = *t.SampleRatio
	}
	if s.ServiceName == "" {
		s.ServiceName = strings.TrimSpace(getenv(envServiceName))
	}
	if s.ServiceName == "" {
		s.ServiceName = "sendguard"
	}
	if v := getenv(envSDKDisabled); v != "" {
		off, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return s, fmt.Errorf("tracing: %s %q: must be true or false", envSDKDisabled, v)
		}
		if off {
			return s, nil
		}
	}
	raw, from := t.OTLPEndpoint, "tracing.otlp_endpoint"
	for _, e := range []string{envTracesEndpoint, envEndpoint} {
		if raw != "" {
			break
		}
		raw, from = strings.TrimSpace(getenv(e)), e
	}
	if raw == "" {
		return s, nil
	}
	hostport, scheme, err := parseOTLPEndpoint(raw)
	if err != nil {
		return s, fmt.Errorf("tracing: %s %q: %w", from, raw, err)
	}
	for _, e := range []string{envTracesInsecure, envInsecure} {
		v := strings.TrimSpace(getenv(e))
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("tracing: %s %q: must be true or false", e, v)
		}
		s.Insecure = s.Insecure || b
		break
	}
	switch scheme {
	case "http":
		s.Insecure = true
	case "https":
		if s.Insecure {
			return s, fmt.Errorf("tracing: %s %q is https, but insecure is set: use http:// for plaintext", from, raw)
		}
	}
	s.Enabled, s.Endpoint, s.From = true, hostport, from
	return s, nil
}

// parseOTLPEndpoint reads host:port or an http(s) URL with a port and no
// path (OTLP/gRPC has none).
func parseOTLPEndpoint(raw string) (hostport, scheme string, err error) {
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", "", fmt.Errorf("must be host:port or an http:// or https:// URL")
		}
		if u.Port() == "" {
			return "", "", fmt.Errorf("name the port (OTLP/gRPC listens on 4317 by default)")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return "", "", fmt.Errorf("an OTLP/gRPC endpoint has no path, query or user")
		}
		return u.Host, u.Scheme, nil
	}
	if host, port, err := net.SplitHostPort(raw); err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("must be host:port or an http:// or https:// URL")
	}
	return raw, "", nil
}

func (t Tracing) validate(bad func(format string, args ...any)) {
	if t.OTLPEndpoint != "" {
		if _, scheme, err := parseOTLPEndpoint(t.OTLPEndpoint); err != nil {
			bad("tracing.otlp_endpoint %q: %v", t.OTLPEndpoint, err)
		} else if scheme == "https" && t.Insecure {
			bad("tracing.insecure: true contradicts the https:// otlp_endpoint: use http:// for plaintext")
		}
	}
	if r := t.SampleRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		bad("tracing.sample_ratio %v: a share of new traces, 0 to 1", *r)
	}
	if strings.TrimSpace(t.ServiceName) != t.ServiceName {
		bad("tracing.service_name %q: has leading or trailing whitespace", t.ServiceName)
	}
}
