package policy

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/policies"
)

// kubeletVolume lays out files (volume path → content) under a new
// directory as the kubelet's atomic writer does for a ConfigMap or Secret
// volume: the files in a hidden timestamped directory, a ..data symlink to
// it, and one top-level symlink per first path segment, name → ..data/name.
func kubeletVolume(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	const ts = "..2026_11_27_09_46_15.1234567890"
	top := map[string]bool{}
	for p, src := range files {
		full := filepath.Join(dir, ts, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, src, 0o644); err != nil {
			t.Fatal(err)
		}
		top[strings.Split(p, "/")[0]] = true
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range top {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shippedFiles returns the embedded policy tree, each file's volume path
// made by key (for a ConfigMap mounted with items, the nested path; without
// items, the flat key).
func shippedFiles(t *testing.T, key func(p string) string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) == ".go" {
			return err
		}
		src, err := fs.ReadFile(policies.FS, p)
		files[key(p)] = src
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestKubeletVolume: the shipped tree, mounted as the kubelet mounts a
// ConfigMap, loads and answers every probe: with items mapping keys to the
// nested paths, and with flat keys (sendguard.config.data.json) and no
// items. Before the loader skipped ..entries and followed symlinks, the
// first failed (no .rego modules: the top-level symlinked directories were
// not entered) and the second found no probes file.
func TestKubeletVolume(t *testing.T) {
	want := len(shippedFiles(t, func(p string) string { return p }))
	for _, tc := range []struct {
		name string
		key  func(p string) string
	}{
		{"items with nested paths", func(p string) string { return p }},
		{"flat keys", func(p string) string {
			ext := path.Ext(p)
			return strings.ReplaceAll(strings.TrimSuffix(p, ext), "/", ".") + ext
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := shippedFiles(t, tc.key)
			if len(files) != want {
				t.Fatalf("%d files after mapping keys, want %d (two keys collide)", len(files), want)
			}
			dir := kubeletVolume(t, files)
			e, err := New(context.Background(), Options{Dir: dir, CacheEntries: -1})
			if err != nil {
				t.Fatalf("New(%s) = %v, want nil", dir, err)
			}
			if got, want := len(e.Probes()), len(shippedProbes(t)); got != want {
				t.Errorf("New(%s) ran %d probes, want %d", dir, got, want)
			}
		})
	}
}

func shippedProbes(t *testing.T) []Probe {
	t.Helper()
	src, err := fs.ReadFile(policies.FS, ProbesFile)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := decodeProbes(src)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestKubeletVolumeUpdate: the kubelet updates a volume by writing a new
// timestamped directory and swapping ..data; Reload reads the new files.
func TestKubeletVolumeUpdate(t *testing.T) {
	dir := kubeletVolume(t, shippedFiles(t, func(p string) string { return p }))
	e, err := New(context.Background(), Options{Dir: dir, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.Probes())
	// The new generation drops all probes but the first.
	files := shippedFiles(t, func(p string) string { return p })
	one, err := json.Marshal(map[string][]Probe{"probes": shippedProbes(t)[:1]})
	if err != nil {
		t.Fatal(err)
	}
	files[ProbesFile] = one
	const ts2 = "..2026_11_27_10_00_00.987654321"
	for p, src := range files {
		full := filepath.Join(dir, ts2, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts2, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(context.Background()); err != nil {
		t.Fatalf("Reload() = %v, want nil", err)
	}
	if got := len(e.Probes()); got != 1 || before == 1 {
		t.Errorf("after the ..data swap: %d probes (before: %d), want 1", got, before)
	}
}

// TestWalkRefuses: a symlink out of the tree, a symlink loop and two files
// naming the same tree path are errors, not silently read or skipped.
func TestWalkRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"symlink out of the root", func(t *testing.T, dir string) {
			out := t.TempDir()
			if err := os.WriteFile(filepath.Join(out, "evil.rego"), []byte("package evil\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(out, "evil.rego"), filepath.Join(dir, "evil.rego")); err != nil {
				t.Fatal(err)
			}
		}, "evil.rego"},
		{"symlink loop", func(t *testing.T, dir string) {
			if err := os.Symlink("..", filepath.Join(dir, "sendguard", "loop")); err != nil {
				t.Fatal(err)
			}
		}, "symlink loop"},
		{"flat key and nested file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "sendguard.probes.json"), []byte(`{}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "both name sendguard/probes.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shippedTree(t)
			tc.setup(t, dir)
			_, err := New(context.Background(), Options{Dir: dir, CacheEntries: -1})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%s) = %v, want an error naming %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestUnflatten(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"decision.rego", "decision.rego"},
		{"sendguard.decision.rego", "sendguard/decision.rego"},
		{"sendguard.config.data.json", "sendguard/config/data.json"},
		{"schemas.sendguard.config.json", "schemas/sendguard/config.json"},
		{".hidden", ".hidden"},
		{"a..b.rego", "a..b.rego"},
		{"noext", "noext"},
	} {
		if got := unflatten(tc.in); got != tc.want {
			t.Errorf("unflatten(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
