package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/sendguard/sendguard/internal/version"
)

// entry is one path of the image's flattened filesystem.
type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	mtime    time.Time
	data     []byte
}

// The image as `make image` builds it: the real binary, compiled with
// BuildBinary, packed by the imagebuild command (run as its own process:
// gzip of a 60 MB binary under this test's -race would take minutes),
// written as a tarball and read back with go-containerregistry's own reader
// (what docker-archive consumers parse).
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary is a linux binary; run on linux")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := filepath.Join(dir, "sendguard")
	if err := BuildBinary(ctx, "", "../..", runtime.GOARCH, bin); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(dir, "imagebuild")
	if out, err := exec.Command("go", "build", "-o", tool, "../../cmd/imagebuild").CombinedOutput(); err != nil {
		t.Fatalf("go build imagebuild: %v\n%s", err, out)
	}
	created := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	pack := func(out string, epoch int64) {
		t.Helper()
		cmd := exec.Command(tool, "-binary", bin, "-out", out, "-arch", runtime.GOARCH, "-revision", "0123456789abcdef")
		cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("imagebuild: %v\n%s", err, b)
		}
	}
	tarPath := filepath.Join(dir, "sendguard-image.tar")
	pack(tarPath, created.Unix())
	tag := Tag(version.Version)

	t.Run("manifest", func(t *testing.T) {
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarPath) })
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 {
			t.Fatalf("manifest.json has %d images, want 1", len(m))
		}
		if want := []string{version.ImageRepository + ":" + version.Version}; !slices.Equal(m[0].RepoTags, want) {
			t.Errorf("RepoTags = %q, want %q", m[0].RepoTags, want)
		}
		if len(m[0].Layers) != 2 {
			t.Errorf("layers = %q, want the base and the binary", m[0].Layers)
		}
	})

	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(tarPath, &ref)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("config", func(t *testing.T) {
		cf, err := back.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
			t.Errorf("platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
		}
		if !cf.Created.Time.Equal(created) {
			t.Errorf("created = %v, want %v", cf.Created.Time, created)
		}
		c := cf.Config
		if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/sendguard"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
			t.Errorf("entrypoint %q cmd %q, want [/usr/local/bin/sendguard] [serve]", c.Entrypoint, c.Cmd)
		}
		if c.User != "65532:65532" {
			t.Errorf("user = %q, want 65532:65532 (numeric, so runAsNonRoot can check it)", c.User)
		}
		if c.WorkingDir != "/var/lib/sendguard" {
			t.Errorf("working dir = %q", c.WorkingDir)
		}
		wantEnv := []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "SENDGUARD_CONFIG=/etc/sendguard/sendguard.yaml"}
		if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
			t.Errorf("env (-want +got):\n%s", diff)
		}
		wantLabels := map[string]string{
			"org.opencontainers.image.title":    "sendguard",
			"org.opencontainers.image.version":  version.Version,
			"org.opencontainers.image.ref.name": version.Version,
			"org.opencontainers.image.revision": "0123456789abcdef",
			"org.opencontainers.image.created":  "2026-11-27T10:00:00Z",
			"org.opencontainers.image.source":   "https://github.com/sendguard/sendguard",
			"org.opencontainers.image.url":      "https://github.com/sendguard/sendguard",
		}
		for k, v := range wantLabels {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}
		if c.Labels["org.opencontainers.image.description"] == "" {
			t.Error("no org.opencontainers.image.description label")
		}
		if len(cf.History) != 2 || !cf.History[0].Created.Time.Equal(created) || !cf.History[1].Created.Time.Equal(created) {
			t.Errorf("history = %+v, want two entries created %v", cf.History, created)
		}
	})

	// What podman load and docker load see: load_test.go.
	t.Run("load", func(t *testing.T) { testLoad(t, tarPath, back) })

	fsys := flatten(t, back)
	t.Run("filesystem", func(t *testing.T) {
		// Exactly these paths: no shell, no package manager, nothing else.
		want := []string{
			"etc/", "etc/group", "etc/nsswitch.conf", "etc/passwd", "etc/sendguard/", "etc/ssl/", "etc/ssl/certs/",
			"etc/ssl/certs/ca-certificates.crt", "home/", "home/nonroot/", "tmp/", "usr/", "usr/local/",
			"usr/local/bin/", "usr/local/bin/sendguard", "var/", "var/lib/", "var/lib/sendguard/",
		}
		var got []string
		for p := range fsys {
			got = append(got, p)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("paths (-want +got):\n%s", diff)
		}
		for p, e := range fsys {
			if !e.mtime.Equal(created) {
				t.Errorf("%s mtime = %v, want %v", p, e.mtime, created)
			}
			if e.typ == tar.TypeReg && e.mode&0o111 != 0 && p != "usr/local/bin/sendguard" {
				t.Errorf("%s is executable; the only executable is the binary", p)
			}
			if e.mode&0o002 != 0 && p != "tmp/" {
				t.Errorf("%s is world-writable (mode %o)", p, e.mode)
			}
		}
		if b := fsys["usr/local/bin/sendguard"]; b.mode != 0o755 || b.uid != 0 || !bytes.Equal(b.data, data) {
			t.Errorf("binary: mode %o uid %d, same bytes %v; want 755, root, the built binary", b.mode, b.uid, bytes.Equal(b.data, data))
		}
		if w := fsys["var/lib/sendguard/"]; w.uid != UID || w.gid != GID || w.mode != 0o700 {
			t.Errorf("working dir: uid %d gid %d mode %o, want %d %d 700", w.uid, w.gid, w.mode, UID, GID)
		}
		if tmp := fsys["tmp/"]; tmp.mode != 0o1777 {
			t.Errorf("/tmp mode = %o, want 1777", tmp.mode)
		}
		if p := string(fsys["etc/passwd"].data); !strings.Contains(p, "\nnonroot:x:65532:65532:") || strings.Contains(p, "/bin/sh") {
			t.Errorf("/etc/passwd = %q, want user nonroot 65532 and no login shell", p)
		}
		if g := string(fsys["etc/group"].data); !strings.Contains(g, "\nnonroot:x:65532:") {
			t.Errorf("/etc/group = %q, want group nonroot 65532", g)
		}
	})

	t.Run("ca certificates", func(t *testing.T) {
		rest, n := fsys["etc/ssl/certs/ca-certificates.crt"].data, 0
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				t.Fatalf("certificate %d: %v", n, err)
			}
			n++
		}
		if len(bytes.TrimSpace(rest)) != 0 || n < 100 {
			t.Errorf("CA bundle: %d certificates, %d bytes left over; want the Mozilla roots (over 100) and nothing else", n, len(rest))
		}
	})

	t.Run("static binary", func(t *testing.T) {
		f, err := elf.NewFile(bytes.NewReader(fsys["usr/local/bin/sendguard"].data))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary has a dynamic loader (PT_INTERP): it was not built with CGO_ENABLED=0 and would not start in an image without libc")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("the binary needs %q", libs)
		}
	})

	t.Run("binary runs", func(t *testing.T) {
		// Out of the layer, into an empty directory, with an empty
		// environment: what the container runtime gives it.
		run := t.TempDir()
		exe := filepath.Join(run, "sendguard")
		if err := os.WriteFile(exe, fsys["usr/local/bin/sendguard"].data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "version")
		cmd.Dir, cmd.Env = run, []string{}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sendguard version: %v\n%s", err, out)
		}
		if got, _, _ := strings.Cut(string(out), "\n"); got != version.String() {
			t.Errorf("sendguard version printed %q first, want %q", got, version.String())
		}
		// The embedded policies load and answer their probes.
		cfg, err := filepath.Abs("../../cmd/devstack/sendguard.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(exe, "config", "check", "--config", cfg)
		cmd.Dir, cmd.Env = run, []string{}
		if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "config ok:") {
			t.Errorf("sendguard config check = %v\n%s", err, out)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		again := filepath.Join(t.TempDir(), "again.tar")
		pack(again, created.Unix())
		if a, b := fileSum(t, tarPath), fileSum(t, again); a != b {
			t.Errorf("the same inputs gave two tarballs: %x and %x", a, b)
		}
		later := filepath.Join(t.TempDir(), "later.tar")
		pack(later, created.Unix()+1)
		if configOf(t, later) == configOf(t, tarPath) {
			t.Error("a different SOURCE_DATE_EPOCH gave the same config: timestamps do not come from it")
		}
	})
}

// configOf is the config blob digest manifest.json names.
func configOf(t *testing.T, path string) string {
	t.Helper()
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil || len(m) != 1 {
		t.Fatalf("manifest of %s: %v %v", path, m, err)
	}
	return m[0].Config
}

func TestBuildRefuses(t *testing.T) {
	if _, err := Build(Options{}); err == nil {
		t.Error("Build without a binary succeeded")
	}
	img, err := Build(Options{Binary: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"", "Upper/Case:1", "repo:bad tag"} {
		if err := Write(io.Discard, tag, img); err == nil {
			t.Errorf("Write(%q) succeeded", tag)
		}
	}
	// Defaults: the epoch, amd64, version.Version.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Time.Equal(time.Unix(0, 0)) || cf.Architecture != "amd64" || cf.Config.Labels["org.opencontainers.image.version"] != version.Version {
		t.Errorf("defaults: created %v arch %s version %s", cf.Created.Time, cf.Architecture, cf.Config.Labels["org.opencontainers.image.version"])
	}
	if _, ok := cf.Config.Labels["org.opencontainers.image.revision"]; ok {
		t.Error("revision label without a revision")
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// flatten reads the image's filesystem, every layer applied.
func flatten(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	fsys := map[string]entry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		// Directories as Build names them, with a trailing slash.
		p := strings.TrimSuffix(strings.TrimPrefix(h.Name, "/"), "/")
		if h.Typeflag == tar.TypeDir {
			p += "/"
		}
		fsys[p] = entry{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, mtime: h.ModTime, data: b}
	}
	return fsys
}
