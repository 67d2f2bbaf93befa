package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// volume lays files out as the kubelet's atomic writer does for a ConfigMap
// volume, generation by generation: the files in a hidden timestamped
// directory, ..data a symlink to it, each visible name a symlink through
// ..data. Swap writes the next generation and replaces ..data in one rename,
// then removes the old generation, as the kubelet does.
type volume struct {
	t   *testing.T
	dir string
	gen int
	cur string
}

func newVolume(t *testing.T, files map[string]string) *volume {
	v := &volume{t: t, dir: t.TempDir()}
	v.swap(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (v *volume) swap(files map[string]string) {
	t := v.t
	t.Helper()
	v.gen++
	ts := fmt.Sprintf("..2026_11_27_10_00_%02d.%09d", v.gen, v.gen)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.cur != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, v.cur)); err != nil {
			t.Fatal(err)
		}
	}
	v.cur = ts
}

// watcher returns a poll function over a started Watcher on paths: each
// call is one poll, returning what changed (nil: nothing).
func watcher(t *testing.T, paths ...string) (tick func() []string) {
	var calls [][]string
	w := &Watcher{Paths: paths, Changed: func(_ context.Context, p []string) { calls = append(calls, p) }}
	w.Start()
	return func() []string {
		t.Helper()
		calls = nil
		got := w.Poll(context.Background())
		if len(got) > 0 && (len(calls) != 1 || !slices.Equal(calls[0], got)) {
			t.Errorf("Poll returned %q, Changed got %q", got, calls)
		}
		if len(got) == 0 && len(calls) > 0 {
			t.Errorf("Poll returned nothing, Changed got %q", calls)
		}
		return got
	}
}

func TestConfigMapSwap(t *testing.T) {
	cfgVol := newVolume(t, map[string]string{"sendguard.yaml": "a: 1\n"})
	polVol := newVolume(t, map[string]string{"sendguard.decision.rego": "package x\n", "sendguard.config.data.json": "{}"})
	cfg := filepath.Join(cfgVol.dir, "sendguard.yaml")
	tick := watcher(t, cfg, polVol.dir, "")

	if got := tick(); got != nil {
		t.Fatalf("nothing changed, Changed(%q)", got)
	}
	// The kubelet writing the next generation beside the current one is
	// not a change yet: nothing visible moved until ..data swaps.
	next := filepath.Join(polVol.dir, "..2026_11_27_10_59_59.000000000")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(next, "sendguard.decision.rego"), []byte("package half_written\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tick(); got != nil {
		t.Errorf("a generation written but not swapped in: Changed(%q), want no call", got)
	}
	if err := os.RemoveAll(next); err != nil {
		t.Fatal(err)
	}
	// The same bytes in a new generation still count: the kubelet only
	// swaps when the ConfigMap changed, and a reload of equal content is
	// harmless.
	cfgVol.swap(map[string]string{"sendguard.yaml": "a: 2\n"})
	if got := tick(); !slices.Equal(got, []string{cfg}) {
		t.Errorf("after the config swap: Changed(%q), want [%s]", got, cfg)
	}
	if got := tick(); got != nil {
		t.Errorf("a second poll after one swap: Changed(%q), want no call", got)
	}
	polVol.swap(map[string]string{"sendguard.decision.rego": "package x\n", "sendguard.config.data.json": `{"a":1}`})
	if got := tick(); !slices.Equal(got, []string{polVol.dir}) {
		t.Errorf("after the policy swap: Changed(%q), want [%s]", got, polVol.dir)
	}
	cfgVol.swap(map[string]string{"sendguard.yaml": "a: 3\n"})
	polVol.swap(map[string]string{"sendguard.decision.rego": "package y\n", "sendguard.config.data.json": `{"a":1}`})
	if got := tick(); !slices.Equal(got, []string{cfg, polVol.dir}) {
		t.Errorf("after both swapped: Changed(%q), want both", got)
	}
}

func TestPlainFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sendguard.yaml")
	pol := filepath.Join(dir, "policies")
	if err := os.WriteFile(cfg, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(pol, "sendguard"), 0o755); err != nil {
		t.Fatal(err)
	}
	rego := filepath.Join(pol, "sendguard", "decision.rego")
	if err := os.WriteFile(rego, []byte("package x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tick := watcher(t, cfg, pol)
	if got := tick(); got != nil {
		t.Fatalf("nothing changed, Changed(%q)", got)
	}

	// An edit in place, same size: the modification time tells.
	old, err := os.Stat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("a: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cfg, old.ModTime().Add(time.Second), old.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := tick(); !slices.Equal(got, []string{cfg}) {
		t.Errorf("after an edit in place: Changed(%q), want [%s]", got, cfg)
	}
	// A file deep in the policy tree.
	if err := os.WriteFile(rego, []byte("package xy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tick(); !slices.Equal(got, []string{pol}) {
		t.Errorf("after a nested edit: Changed(%q), want [%s]", got, pol)
	}
	// A new file in the tree.
	if err := os.WriteFile(filepath.Join(pol, "sendguard", "extra.rego"), []byte("package z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tick(); !slices.Equal(got, []string{pol}) {
		t.Errorf("after a new file: Changed(%q), want [%s]", got, pol)
	}
	// Gone for a moment (an editor's rename): no call while it is missing,
	// one when it is back with new content.
	if err := os.Rename(cfg, cfg+".swp"); err != nil {
		t.Fatal(err)
	}
	if got := tick(); got != nil {
		t.Errorf("while the config is missing: Changed(%q), want no call", got)
	}
	if err := os.WriteFile(cfg, []byte("a: 33\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tick(); !slices.Equal(got, []string{cfg}) {
		t.Errorf("after the config came back: Changed(%q), want [%s]", got, cfg)
	}
}

func TestFingerprint(t *testing.T) {
	v := newVolume(t, map[string]string{"k": "v"})
	p := filepath.Join(v.dir, "k")
	a, err := Fingerprint(p)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := Fingerprint(p); err != nil || b != a {
		t.Errorf("Fingerprint twice = %q, %v; want %q", b, err, a)
	}
	v.swap(map[string]string{"k": "v"})
	if b, err := Fingerprint(p); err != nil || b == a {
		t.Errorf("Fingerprint after a swap = %q, %v; want a new one", b, err)
	}
	if _, err := Fingerprint(filepath.Join(v.dir, "missing")); err == nil {
		t.Error("Fingerprint of a missing path: no error")
	}
	// A dangling link inside a watched directory is recorded, not an error
	// (the kubelet removes the old generation right after the swap).
	if err := os.Symlink("nowhere", filepath.Join(v.dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if _, err := Fingerprint(v.dir); err != nil {
		t.Errorf("Fingerprint of a directory with a dangling link: %v", err)
	}
}

// Run polls on its own Interval.
func TestInterval(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	calls := make(chan []string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Watcher{Paths: []string{f}, Interval: 10 * time.Millisecond, Changed: func(_ context.Context, p []string) { calls <- p }}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// Run has taken its first fingerprints once it has polled; a change
	// made before that would be its baseline. Wait for the file to be
	// read by changing it until a call arrives.
	deadline := time.After(10 * time.Second)
	for i := 2; ; i++ {
		if err := os.WriteFile(f, []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-calls:
			if !slices.Equal(p, []string{f}) {
				t.Errorf("Changed(%q), want [%s]", p, f)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no Changed call within 10s with a 10ms interval")
		}
	}
}

// A swap that lands in the middle of a fingerprint's walk gives a torn
// reading (some files resolved in the old generation, some in the new).
// Poll reads a changed path again at once and reports it only when both
// readings agree, so one swap is one change, never the torn reading and
// then the whole one. A path that keeps moving waits for the next poll.
func TestTornReading(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readings []string // after the baseline "old"
		want     [][]string
	}{
		// Poll 1: torn, then new (disagree: wait). Poll 2: new, new.
		{"torn then whole", []string{"torn", "new", "new", "new"}, [][]string{nil, {"p"}}},
		{"one clean swap", []string{"new", "new", "new"}, [][]string{{"p"}, nil}},
		{"nothing changed", []string{"old", "old"}, [][]string{nil, nil}},
		// Still being written at both polls.
		{"moving", []string{"a", "b", "c", "d"}, [][]string{nil, nil}},
		// Unreadable on the second reading: kept for the next poll.
		{"unreadable again", []string{"new", "", "new", "new"}, [][]string{nil, {"p"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readings := append([]string{"old"}, tc.readings...)
			var calls [][]string
			w := &Watcher{Paths: []string{"p"}, Changed: func(_ context.Context, paths []string) { calls = append(calls, paths) }}
			w.fp = func(string) (string, error) {
				if len(readings) == 0 {
					t.Fatal("read more often than scripted")
				}
				r := readings[0]
				readings = readings[1:]
				if r == "" {
					return "", fmt.Errorf("unreadable")
				}
				return r, nil
			}
			w.Start()
			for i, want := range tc.want {
				if got := w.Poll(context.Background()); !slices.Equal(got, want) {
					t.Errorf("poll %d: Poll() = %q, want %q", i+1, got, want)
				}
			}
			if n := len(slices.DeleteFunc(calls, func(c []string) bool { return c == nil })); n > 1 {
				t.Errorf("Changed called %d times for one swap, want at most 1", n)
			}
		})
	}
}
