package console

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Entry is one change made in the console.
type Entry struct {
	Time     time.Time `json:"time"`
	Who      string    `json:"who"`    // which token and sign-in, e.g. "admin token a1b2c3d4, sign-in 9f8e7d6c"
	Action   string    `json:"action"` // signin, signout, block, lift, pause, resume; "…_failed" when the change failed after it was audited
	Instance string    `json:"instance_id,omitempty"`
	Phone    string    `json:"phone,omitempty"` // E.164; masked when shown
	Reason   string    `json:"reason,omitempty"`
}

// Audit is the console's audit trail: every change, who made it (which
// token, which sign-in), what, when and why. With a path it is a JSON Lines
// file, appended and synced entry by entry, read back at start, so the
// trail outlives restarts; without one it is kept in memory only. The
// console shows the newest keep entries. Safe for concurrent use.
type Audit struct {
	mu      sync.Mutex
	f       *os.File // nil: memory only
	entries []Entry  // oldest first, at most keep
	keep    int
}

// OpenAudit opens (creating it, mode 0600, and its directory, 0700) the
// audit file at path and
// reads the entries it holds; path "" keeps the trail in memory. A line
// that does not parse (a torn last write) is skipped.
func OpenAudit(path string, keep int) (*Audit, error) {
	if keep <= 0 {
		keep = 1000
	}
	a := &Audit{keep: keep}
	if path == "" {
		return a, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("console audit directory: %w", err)
	}
	if r, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var e Entry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				a.add(e)
			}
		}
		err := sc.Err()
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("read console audit %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open console audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open console audit: %w", err)
	}
	a.f = f
	return a, nil
}

// Durable reports whether entries are written to a file.
func (a *Audit) Durable() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f != nil
}

// Append writes e; when it returns nil, e is on disk (synced) or, for a
// memory trail, kept.
func (a *Audit) Append(e Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode audit entry: %w", err)
		}
		if _, err := a.f.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("write console audit: %w", err)
		}
		if err := a.f.Sync(); err != nil {
			return fmt.Errorf("sync console audit: %w", err)
		}
	}
	a.add(e)
	return nil
}

func (a *Audit) add(e Entry) {
	a.entries = append(a.entries, e)
	if len(a.entries) > a.keep {
		a.entries = append(a.entries[:0:0], a.entries[len(a.entries)-a.keep:]...)
	}
}

// Entries returns the kept entries for which match is true (nil: all),
// newest first.
func (a *Audit) Entries(match func(Entry) bool) []Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Entry
	for i := len(a.entries) - 1; i >= 0; i-- {
		if match == nil || match(a.entries[i]) {
			out = append(out, a.entries[i])
		}
	}
	return out
}

// Close closes the file.
func (a *Audit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
