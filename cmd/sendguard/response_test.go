package main

import (
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/config"
)

// TestRestartOnlyBlocks: what is built once at start cannot change on a
// reload. The tracing exporter and the gRPC server's stats handler, and
// the ext_proc service (which responses it replaces), are built at start,
// so a reload that changes them is refused, naming them; a reload that
// keeps them and changes something else is not.
func TestRestartOnlyBlocks(t *testing.T) {
	parse := func(yaml string) *config.Config {
		t.Helper()
		c, err := config.Parse([]byte("inbound: {routes: []}\n" + yaml))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name, base, same, want string
		changed                []string
	}{
		{"tracing", "tracing: {otlp_endpoint: 'c:4317', sample_ratio: 0.5}\n",
			"tracing: {otlp_endpoint: 'c:4317', sample_ratio: 0.5}\nshadow: true\n", "tracing changed",
			[]string{"", "tracing: {otlp_endpoint: 'c:4317', sample_ratio: 0.25}\n", "tracing: {otlp_endpoint: 'd:4317', sample_ratio: 0.5}\n"}},
		{"response failures", "response: {failure_statuses: [500, 503]}\n",
			"response: {failure_statuses: [500, 503], ratelimit_headers: true}\n", "response.failure_statuses",
			[]string{"", "response: {failure_statuses: [500]}\n", "response: {failure_statuses: [500, 503], replace_failures: false}\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := parse(tc.base)
			if err := restartOnly(base, parse(tc.same)); err != nil {
				t.Errorf("restartOnly(%q → %q) = %v, want nil", tc.base, tc.same, err)
			}
			for _, next := range tc.changed {
				if err := restartOnly(base, parse(next)); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("restartOnly(%q → %q) = %v, want %q named", tc.base, next, err, tc.want)
				}
			}
		})
	}
}
