package main

import (
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/config"
)

// TestRestartOnlyResponseFailures: the ext_proc service is registered at
// start, so a reload that changes which responses it replaces is refused
// (naming the keys), and one that changes only ratelimit_headers is not.
func TestRestartOnlyResponseFailures(t *testing.T) {
	parse := func(yaml string) *config.Config {
		t.Helper()
		c, err := config.Parse([]byte("inbound: {routes: []}\n" + yaml))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := parse("response: {failure_statuses: [500, 503]}\n")
	if err := restartOnly(base, parse("response: {failure_statuses: [500, 503], ratelimit_headers: true}\n")); err != nil {
		t.Errorf("restartOnly(ratelimit_headers only) = %v, want nil", err)
	}
	for _, next := range []string{"", "response: {failure_statuses: [500]}\n", "response: {failure_statuses: [500, 503], replace_failures: false}\n"} {
		if err := restartOnly(base, parse(next)); err == nil || !strings.Contains(err.Error(), "response.failure_statuses") {
			t.Errorf("restartOnly(response → %q) = %v, want response.failure_statuses named", next, err)
		}
	}
}
