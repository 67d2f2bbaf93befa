package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/sendguard/sendguard/internal/image"
	"github.com/sendguard/sendguard/internal/version"
)

// run with -binary packs that file (BuildBinary itself is exercised by
// internal/image's TestImage): SOURCE_DATE_EPOCH sets every timestamp, the
// tag is the chart's default image, and a bad epoch is refused.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "sendguard")
	if err := os.WriteFile(bin, []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "image.tar")
	env := func(k string) string { return map[string]string{"SOURCE_DATE_EPOCH": "1790000000"}[k] }
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-binary", bin, "-out", out, "-arch", "arm64", "-revision", "abc"}, env, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), image.Tag(version.Version)) {
		t.Errorf("output %q does not name the tag %s", stdout.String(), image.Tag(version.Version))
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1790000000, 0); !cf.Created.Time.Equal(want) || cf.Architecture != "arm64" || cf.Config.Labels["org.opencontainers.image.revision"] != "abc" {
		t.Errorf("created %v arch %s revision %q, want %v arm64 abc", cf.Created.Time, cf.Architecture, cf.Config.Labels["org.opencontainers.image.revision"], want)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(out) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != "ghcr.io/sendguard/sendguard:"+version.Version {
		t.Errorf("manifest = %+v", m)
	}

	for _, bad := range []string{"yesterday", "-1", "1.5"} {
		env := func(k string) string { return map[string]string{"SOURCE_DATE_EPOCH": bad}[k] }
		if err := run(context.Background(), []string{"-binary", bin, "-out", out}, env, io.Discard, io.Discard); err == nil {
			t.Errorf("run with SOURCE_DATE_EPOCH=%q succeeded", bad)
		}
	}
	if err := run(context.Background(), []string{"-binary", filepath.Join(dir, "missing"), "-out", out}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("run with a missing binary succeeded")
	}
	if err := run(context.Background(), []string{"extra"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("run with an argument succeeded")
	}
}
