// Package watch notices when files or directories change on disk, by
// polling, including the way the kubelet updates a mounted ConfigMap: it
// writes the new files into a fresh hidden directory (..2026_11_27_10_00_00.1)
// and swaps the ..data symlink to it in one rename, so every visible name
// (sendguard.yaml -> ..data/sendguard.yaml) changes its target at once while
// no visible file is written. inotify on the visible name sees nothing;
// resolving the links and comparing what they lead to does.
//
// Polling is deliberate: it costs a few stats every interval, needs no
// inotify descriptors (limited per node), and works the same on every
// filesystem and volume type.
package watch

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Fingerprint summarises what path is now: for a file, its resolved target
// (every symlink followed), size, modification time and inode; for a
// directory, the same for every entry under it, symlinks followed (into
// linked directories too, a few levels deep). Names starting with ".." are
// skipped, as the policy loader skips them: in a ConfigMap volume they are
// the kubelet's ..data link and its timestamped directories, and the next
// generation being written there must not count as a change until ..data is
// swapped, which moves every visible name's target at once. Two
// fingerprints differ when any content could have changed. An error means
// path cannot be read now (for instance in the instant of a swap); the
// caller keeps its last fingerprint.
func Fingerprint(path string) (string, error) {
	h := sha256.New()
	if err := fingerprint(h, path, 0); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// maxDepth bounds how many linked directories fingerprint follows, so a
// link to an ancestor ends.
const maxDepth = 4

func fingerprint(h io.Writer, path string, depth int) error {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		fmt.Fprintf(h, "%s\x00%s\n", resolved, stamp(fi))
		return nil
	}
	// A directory's own times change when the kubelet creates the next
	// generation beside the current one: only its entries count.
	fmt.Fprintf(h, "%s/\n", resolved)
	return filepath.WalkDir(resolved, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == resolved {
			return nil
		}
		if strings.HasPrefix(d.Name(), "..") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(resolved, p)
		fmt.Fprintf(h, "%s\x00", rel)
		if d.Type()&fs.ModeSymlink != 0 {
			if depth >= maxDepth {
				fmt.Fprintf(h, "too deep\n")
				return nil
			}
			if err := fingerprint(h, p, depth+1); err != nil {
				// Dangling (or unreadable): recorded, not an error.
				fmt.Fprintf(h, "unresolved\n")
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\n", stamp(fi))
		return nil
	})
}

func stamp(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%s %d %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), ino)
}

// Watcher polls Paths and calls Changed when any of them changes. It is
// not safe for concurrent use: one goroutine runs Run (or Start and Poll).
type Watcher struct {
	// Paths are the files and directories to watch; empty ones are
	// ignored.
	Paths []string
	// Interval between Run's polls; default 5s.
	Interval time.Duration
	// Changed, when set, is called by Poll with the paths whose fingerprint
	// changed since the last poll. A path's new fingerprint is kept
	// whatever Changed does, so an edit that fails to load is not retried
	// at every poll; the next edit calls again.
	Changed func(ctx context.Context, changed []string)
	// Log receives a debug line when a path cannot be read; nil: discard.
	Log *slog.Logger

	last map[string]string
	// fp is Fingerprint; tests replace it.
	fp func(string) (string, error)
}

// Start takes the first fingerprints, the baseline of the first Poll.
func (w *Watcher) Start() {
	if w.fp == nil {
		w.fp = Fingerprint
	}
	w.last = map[string]string{}
	for _, p := range w.Paths {
		if strings.TrimSpace(p) != "" {
			w.last[p], _ = w.fp(p) // "" when unreadable: its first reading is a change
		}
	}
}

// Poll fingerprints every path, calls Changed with the ones that changed
// (if any did) and returns them, in the order of Paths. A path that cannot
// be read now keeps its last fingerprint. A path that reads as changed is
// read again at once, and counts only when both readings agree: a
// fingerprint walks the files one by one, so a ConfigMap swap (one rename)
// that lands in the middle of a walk gives a reading of half the old files
// and half the new ones, and reporting it would reload once for that torn
// reading and again at the next poll for the whole new one. A path still
// moving is read again at the next poll.
func (w *Watcher) Poll(ctx context.Context) []string {
	if w.last == nil {
		w.Start()
	}
	var changed []string
	for _, p := range w.Paths {
		last, ok := w.last[p]
		if !ok {
			continue
		}
		fp, err := w.fp(p)
		if err == nil && fp != last {
			var again string
			if again, err = w.fp(p); err == nil && again != fp {
				if w.Log != nil {
					w.Log.Debug("watch: changing while read; reading again at the next poll", "path", p)
				}
				continue
			}
		}
		if err != nil {
			if w.Log != nil {
				w.Log.Debug("watch: cannot read; trying again at the next poll", "path", p, "err", err)
			}
			continue
		}
		if fp != last {
			w.last[p] = fp
			changed = append(changed, p)
		}
	}
	if len(changed) > 0 && w.Changed != nil {
		w.Changed(ctx, changed)
	}
	return changed
}

// Run takes the baseline (Start), then polls every Interval until ctx is
// done, and returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	w.Start()
	iv := w.Interval
	if iv <= 0 {
		iv = 5 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.Poll(ctx)
		}
	}
}
