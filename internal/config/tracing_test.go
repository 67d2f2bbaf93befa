package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTracingParse: the tracing block parses, and values that cannot work
// are refused with the key named (so `sendguard config check` refuses them).
func TestTracingParse(t *testing.T) {
	c, err := Parse([]byte("inbound: {routes: []}\ntracing: {otlp_endpoint: 'otel-collector:4317', insecure: true, sample_ratio: 0.25, service_name: sg-eu}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tr := c.Tracing; tr.OTLPEndpoint != "otel-collector:4317" || !tr.Insecure || tr.SampleRatio == nil || *tr.SampleRatio != 0.25 || tr.ServiceName != "sg-eu" {
		t.Errorf("Parse(tracing) = %+v", tr)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"tracing: {otlp_endpoint: collector}", `tracing.otlp_endpoint "collector": must be host:port`},
		{"tracing: {otlp_endpoint: 'http://collector'}", "name the port"},
		{"tracing: {otlp_endpoint: 'ftp://collector:4317'}", "tracing.otlp_endpoint"},
		{"tracing: {otlp_endpoint: 'http://collector:4318/v1/traces'}", "no path"},
		{"tracing: {otlp_endpoint: 'https://collector:4317', insecure: true}", "tracing.insecure: true contradicts"},
		{"tracing: {sample_ratio: 1.5}", "tracing.sample_ratio 1.5"},
		{"tracing: {sample_ratio: -0.1}", "tracing.sample_ratio -0.1"},
		{"tracing: {sample_ratio: .nan}", "tracing.sample_ratio NaN"},
		{"tracing: {service_name: ' sg'}", "tracing.service_name"},
		{"tracing: {endpoint: 'c:4317'}", "field endpoint not found"},
	} {
		if _, err := Parse([]byte("inbound: {routes: []}\n" + tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to name %q", tc.yaml, err, tc.want)
		}
	}
}

// TestTracingResolve: the file's values win; the standard OpenTelemetry
// variables fill in what it leaves unset; no endpoint, or
// OTEL_SDK_DISABLED=true, is off; a malformed variable is an error naming
// it.
func TestTracingResolve(t *testing.T) {
	ratio := 0.5
	for _, tc := range []struct {
		name    string
		tr      Tracing
		env     map[string]string
		want    TracingSettings
		wantErr string
	}{
		{name: "off by default", want: TracingSettings{SampleRatio: 1, ServiceName: "sendguard"}},
		{name: "file", tr: Tracing{OTLPEndpoint: "c:4317", SampleRatio: &ratio, ServiceName: "sg"},
			want: TracingSettings{Enabled: true, Endpoint: "c:4317", SampleRatio: 0.5, ServiceName: "sg", From: "tracing.otlp_endpoint"}},
		{name: "file wins over the variables", tr: Tracing{OTLPEndpoint: "c:4317", Insecure: true},
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://other:4317", "OTEL_SERVICE_NAME": "from-env"},
			want: TracingSettings{Enabled: true, Endpoint: "c:4317", Insecure: true, SampleRatio: 1, ServiceName: "from-env", From: "tracing.otlp_endpoint"}},
		{name: "http URL in the variable is plaintext",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
			want: TracingSettings{Enabled: true, Endpoint: "collector:4317", Insecure: true, SampleRatio: 1, ServiceName: "sendguard", From: "OTEL_EXPORTER_OTLP_ENDPOINT"}},
		{name: "the traces variable before the general one",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces:4317"},
			want: TracingSettings{Enabled: true, Endpoint: "traces:4317", SampleRatio: 1, ServiceName: "sendguard", From: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}},
		{name: "insecure variable",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"},
			want: TracingSettings{Enabled: true, Endpoint: "collector:4317", Insecure: true, SampleRatio: 1, ServiceName: "sendguard", From: "OTEL_EXPORTER_OTLP_ENDPOINT"}},
		{name: "sdk disabled", tr: Tracing{OTLPEndpoint: "c:4317"}, env: map[string]string{"OTEL_SDK_DISABLED": "true"},
			want: TracingSettings{SampleRatio: 1, ServiceName: "sendguard"}},
		{name: "bad endpoint variable", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "bad insecure variable", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "yes please"}, wantErr: "OTEL_EXPORTER_OTLP_INSECURE"},
		{name: "https variable with insecure", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"}, wantErr: "is https"},
		{name: "bad sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "maybe"}, wantErr: "OTEL_SDK_DISABLED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tr.Resolve(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve(%+v, %v) error = %v, want it to name %q", tc.tr, tc.env, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%+v, %v): %v", tc.tr, tc.env, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resolve(%+v, %v) (-want +got):\n%s", tc.tr, tc.env, diff)
			}
		})
	}
}
