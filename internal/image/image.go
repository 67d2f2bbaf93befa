// Package image builds sendguard's OCI image without Docker: an empty base,
// one layer of files written here (a passwd and group naming the non-root
// user, a CA bundle, the working directory) and one layer holding the static
// binary. No shell, no package manager, nothing else.
//
// The build is reproducible: the same binary, Options and module versions
// give the same image digest and the same tarball, byte for byte. Every
// timestamp (file times, the config's created, the history) is
// Options.Created; the CA bundle comes from the pinned module
// golang.org/x/crypto/x509roots/fallback, not from the build machine; and
// BuildBinary compiles with -trimpath, no VCS stamp and no build ID, so the
// binary depends only on the source and the Go toolchain.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sendguard/sendguard/internal/version"
)

// Paths and identities inside the image.
const (
	// Binary is the entrypoint.
	Binary = "/usr/local/bin/sendguard"
	// UID and GID of the user the image runs as (distroless's "nonroot").
	UID = 65532
	GID = 65532
	// User is the config's user, numeric so that Kubernetes' runAsNonRoot
	// can verify it without reading /etc/passwd.
	User = "65532:65532"
	// CABundle is the PEM file Go's crypto/x509 reads first on Linux.
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
	// WorkingDir holds the embedded store's file (store.path defaults to
	// sendguard.db, relative); the chart mounts an emptyDir there, since
	// the root filesystem is read-only.
	WorkingDir = "/var/lib/sendguard"
	// ConfigFile is where SENDGUARD_CONFIG points: the chart and the
	// injector mount the config ConfigMap at /etc/sendguard.
	ConfigFile = "/etc/sendguard/sendguard.yaml"
)

// Options describe the image. Zero fields take the documented defaults.
type Options struct {
	// Binary is the static linux sendguard binary (BuildBinary). Required.
	Binary []byte
	// Arch is the binary's GOARCH; default "amd64".
	Arch string
	// Version labels the image; default version.Version.
	Version string
	// Revision, when set, is the source's VCS revision
	// (org.opencontainers.image.revision).
	Revision string
	// Created is every timestamp in the image; default the Unix epoch.
	// `make image` passes SOURCE_DATE_EPOCH, the last commit's time.
	Created time.Time
}

// Tag is the image's name: version.ImageRepository:v, the chart's default
// image for appVersion v.
func Tag(v string) string { return version.ImageRepository + ":" + v }

// Build assembles the image.
func Build(o Options) (v1.Image, error) {
	if len(o.Binary) == 0 {
		return nil, errors.New("image: no binary")
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.Version == "" {
		o.Version = version.Version
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	created := o.Created.UTC()

	ca, err := caBundle()
	if err != nil {
		return nil, err
	}
	base, err := layer(created, []file{
		{path: "etc/", mode: 0o755},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "etc/sendguard/", mode: 0o755},
		{path: "etc/ssl/", mode: 0o755},
		{path: "etc/ssl/certs/", mode: 0o755},
		{path: strings.TrimPrefix(CABundle, "/"), mode: 0o644, data: ca},
		{path: "home/", mode: 0o755},
		{path: "home/nonroot/", mode: 0o700, uid: UID, gid: GID},
		{path: "tmp/", mode: 0o1777},
		{path: "var/", mode: 0o755},
		{path: "var/lib/", mode: 0o755},
		{path: strings.TrimPrefix(WorkingDir, "/") + "/", mode: 0o700, uid: UID, gid: GID},
	})
	if err != nil {
		return nil, err
	}
	app, err := layer(created, []file{
		{path: "usr/", mode: 0o755},
		{path: "usr/local/", mode: 0o755},
		{path: "usr/local/bin/", mode: 0o755},
		{path: strings.TrimPrefix(Binary, "/"), mode: 0o755, data: o.Binary},
	})
	if err != nil {
		return nil, err
	}

	labels := map[string]string{
		"org.opencontainers.image.title":       "sendguard",
		"org.opencontainers.image.description": "Policy enforcement for transactional WhatsApp sending: an Envoy ext_authz v3 gRPC sidecar with Rego policies, rate limits and quotas",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.source":      "https://github.com/sendguard/sendguard",
		"org.opencontainers.image.url":         "https://github.com/sendguard/sendguard",
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
		"org.opencontainers.image.ref.name":    o.Version,
	}
	if o.Revision != "" {
		labels["org.opencontainers.image.revision"] = o.Revision
	}
	cfg := &v1.ConfigFile{
		Architecture: o.Arch,
		OS:           "linux",
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			Entrypoint: []string{Binary},
			Cmd:        []string{"serve"},
			User:       User,
			WorkingDir: WorkingDir,
			Env: []string{
				"PATH=/usr/local/bin",
				"SSL_CERT_FILE=" + CABundle,
				"SENDGUARD_CONFIG=" + ConfigFile,
			},
			Labels:       labels,
			ExposedPorts: map[string]struct{}{"9191/tcp": {}, "9192/tcp": {}},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "sendguard image: passwd, group, CA certificates (golang.org/x/crypto/x509roots/fallback), directories", Comment: "base"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "sendguard image: " + Binary + " (CGO_ENABLED=0, -trimpath)", Comment: "sendguard " + o.Version}},
	)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Write writes img as a docker-archive tarball (manifest.json, the config
// and the layers), the format `docker load` and `podman load` read, tagged
// tag.
func Write(w io.Writer, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", tag, err)
	}
	return tarball.Write(ref, img, w)
}

// WriteFile is Write to path, replaced atomically.
func WriteFile(path, tag string, img v1.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".sendguard-image-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := Write(f, tag, img); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// BuildBinary compiles ./cmd/sendguard of the module in moduleDir for
// linux/goarch into out: static (CGO_ENABLED=0) and reproducible
// (-trimpath, -buildvcs=false, an empty build ID, no symbol table). The go
// command is goBin ("go" when empty).
func BuildBinary(ctx context.Context, goBin, moduleDir, goarch, out string) error {
	if goBin == "" {
		goBin = "go"
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out, "./cmd/sendguard")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, stderr.Bytes())
	}
	return nil
}

// caBundle is the PEM of the fallback roots without constraints (a root
// with one, such as a distrust date, cannot say so in a PEM file, so it is
// left out rather than trusted without its limit), in the bundle's order.
func caBundle() ([]byte, error) {
	var buf bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if _, err := x509.ParseCertificate(r.Certificate); err != nil {
			return nil, fmt.Errorf("ca bundle: %w", err)
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
	}
	if buf.Len() == 0 {
		return nil, errors.New("ca bundle: no roots")
	}
	return buf.Bytes(), nil
}

// A file is one layer entry; a path ending in "/" is a directory.
type file struct {
	path     string
	mode     int64
	uid, gid int
	data     []byte
}

// layer is an uncompressed tar of files, every time set to mtime, owners
// numeric (no user or group names to look up at build time).
func layer(mtime time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: mtime, Format: tar.FormatUSTAR}
		if strings.HasSuffix(f.path, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
