package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"sigs.k8s.io/yaml"
)

// loaded is what .ci/imageload prints.
type loaded struct {
	Transport string `json:"transport"`
	Images    []struct {
		Names        []string          `json:"names"`
		ID           string            `json:"id"`
		Architecture string            `json:"architecture"`
		OS           string            `json:"os"`
		Entrypoint   []string          `json:"entrypoint"`
		Cmd          []string          `json:"cmd"`
		User         string            `json:"user"`
		Env          []string          `json:"env"`
		WorkingDir   string            `json:"workingDir"`
		Labels       map[string]string `json:"labels"`
		DiffIDs      []string          `json:"diffIDs"`
		Layers       []string          `json:"layers"`
	} `json:"images"`
}

// imageloadBin is .ci/imageload's binary (`make imageload-bin`):
// IMAGELOAD_BIN, else .cache/imageload/bin/imageload at the repository's
// root. Without it the test fails under CI and is skipped elsewhere.
func imageloadBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("IMAGELOAD_BIN")
	if p == "" {
		p = filepath.Join("..", "..", ".cache", "imageload", "bin", "imageload")
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no imageload at %s: CI must build it with `make imageload-bin` (cold: about 2 CPU-minutes)", p)
	}
	t.Skipf("no imageload at %s: run `make imageload-bin` (builds .ci/imageload, containers/image's podman-load path; about 2 CPU-minutes cold)", p)
	return ""
}

// chartImage is the chart's default image: values.yaml's image.repository
// with the tag, or the chart's appVersion when the tag is empty.
func chartImage(t *testing.T) string {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct{ Repository, Tag string } `json:"image"`
	}
	for path, v := range map[string]any{"../../charts/sendguard/Chart.yaml": &chart, "../../charts/sendguard/values.yaml": &values} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	if values.Image.Repository == "" || tag == "" {
		t.Fatalf("chart image %q tag %q appVersion %q", values.Image.Repository, values.Image.Tag, chart.AppVersion)
	}
	return values.Image.Repository + ":" + tag
}

// testLoad loads the tarball at tarPath (TestImage's, built like `make
// image`) with .ci/imageload, the code path of `podman load` (containers/image
// reading it as a docker-archive, the format `docker load` reads), and checks
// what comes out against img, the same tarball read by go-containerregistry.
// Then it corrupts the binary's layer two ways and wants both refused.
func testLoad(t *testing.T, tarPath string, img v1.Image) {
	bin := imageloadBin(t)
	run := func(path string) (stdout, stderr string, err error) {
		var o, e bytes.Buffer
		cmd := exec.Command(bin, path)
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}

	out, stderr, err := run(tarPath)
	if err != nil {
		t.Fatalf("imageload %s: %v\n%s", tarPath, err, stderr)
	}
	var got loaded
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("imageload printed %q: %v", out, err)
	}
	if got.Transport != "docker-archive" {
		t.Errorf("loaded as %q, want docker-archive (docker load reads only that format)", got.Transport)
	}
	if len(got.Images) != 1 {
		t.Fatalf("loaded %d images, want 1", len(got.Images))
	}
	li := got.Images[0]
	if want := []string{chartImage(t)}; !slices.Equal(li.Names, want) {
		t.Errorf("loaded as %q, want %q (the chart's default image)", li.Names, want)
	}
	id, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if li.ID != id.String() {
		t.Errorf("image ID %s, want the config's digest %s", li.ID, id)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if li.OS != "linux" || li.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", li.OS, li.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(li.Entrypoint, []string{Binary}) || !slices.Equal(li.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q, want [%s] [serve]", li.Entrypoint, li.Cmd, Binary)
	}
	if li.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", li.User)
	}
	if li.WorkingDir != WorkingDir {
		t.Errorf("working dir %q, want %q", li.WorkingDir, WorkingDir)
	}
	if diff := cmp.Diff(cf.Config.Env, li.Env); diff != "" {
		t.Errorf("env (-built +loaded):\n%s", diff)
	}
	if diff := cmp.Diff(cf.Config.Labels, li.Labels); diff != "" {
		t.Errorf("labels (-built +loaded):\n%s", diff)
	}
	// The layers, by the digest of their content (imageload checks each
	// layer against it): the diff_ids of the config Build wrote.
	var want []string
	for _, d := range cf.RootFS.DiffIDs {
		want = append(want, d.String())
	}
	if len(want) != 2 || !slices.Equal(li.DiffIDs, want) {
		t.Errorf("loaded diff IDs %q, want %q", li.DiffIDs, want)
	}
	// Stored uncompressed, as podman's containers-storage keeps them: the
	// blobs' own digests are the diff IDs, checked by imageload.
	if !slices.Equal(li.Layers, want) {
		t.Errorf("stored layers %q, want %q", li.Layers, want)
	}

	// Corruptions of a layer, each refused with nothing printed.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarPath) })
	if err != nil {
		t.Fatal(err)
	}
	baseLayer, appLayer := m[0].Layers[0], m[0].Layers[1]
	for _, tc := range []struct {
		name   string
		member string
		mutate func(t *testing.T, gz []byte) []byte
		// why is in imageload's error.
		why string
	}{
		{
			// One byte flipped in the binary's compressed layer: gzip's
			// CRC or the content's digest catches it.
			name:   "byte flipped in the compressed binary layer",
			member: appLayer,
			mutate: func(t *testing.T, gz []byte) []byte {
				b := slices.Clone(gz)
				b[len(b)/2] ^= 0x01
				return b
			},
			why: appLayer,
		},
		{
			// A well-formed gzip of content with one byte flipped: only
			// the diff_id, the digest of the content, catches it, as
			// docker load's check does. The base layer (the CA bundle,
			// passwd): gzip of the 60 MB binary under -race takes
			// minutes.
			name:   "byte flipped in the base layer's content, recompressed",
			member: baseLayer,
			mutate: func(t *testing.T, gz []byte) []byte {
				zr, err := gzip.NewReader(bytes.NewReader(gz))
				if err != nil {
					t.Fatal(err)
				}
				raw, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				raw[len(raw)/2] ^= 0x01
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				if _, err := zw.Write(raw); err != nil {
					t.Fatal(err)
				}
				if err := zw.Close(); err != nil {
					t.Fatal(err)
				}
				return buf.Bytes()
			},
			why: want[0],
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.tar")
			rewriteMember(t, tarPath, bad, tc.member, func(b []byte) []byte { return tc.mutate(t, b) })
			out, stderr, err := run(bad)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("imageload of a corrupted tarball: %v, want exit status 1; stdout:\n%s", err, out)
			}
			if out != "" {
				t.Errorf("imageload printed %q for a corrupted tarball", out)
			}
			if !strings.Contains(stderr, tc.why) {
				t.Errorf("imageload's error %q does not name %s", stderr, tc.why)
			}
		})
	}
}

// rewriteMember copies the tarball src to dst with the member name's
// content passed through f.
func rewriteMember(t *testing.T, src, dst, name string, f func([]byte) []byte) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	found := false
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
		if h.Name == name {
			b, found = f(b), true
			h.Size = int64(len(b))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("%s has no member %s", src, name)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
