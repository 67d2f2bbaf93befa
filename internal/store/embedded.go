package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
)

// Embedded is the durable store inside the process: one bbolt file (a
// B+tree with copy-on-write pages and fsync'd commits), so quota counters,
// suppressions, pauses and the outbox survive a restart and a kill -9.
//
// Writes go through bbolt's group commit (DB.Batch): concurrent decisions
// share one transaction and one fsync, so a decision waits for its batch's
// commit, not for a commit of its own. Take returns only after the commit
// that holds its consumption is on disk, so an allow that Envoy was told
// about is never lost; what a kill -9 can lose is only decisions still in an
// unfinished batch, which no one was told were allowed (Envoy fails those
// closed). A denial writes nothing: its refill arithmetic is recomputed.
//
// bbolt locks its file: one process at a time. Replicas share state through
// the Redis store instead.
//
// The abuse counters are in the process, in a bounded abuse.Tracker: one
// process owns the file, so they are exact, and a restart forgets them.
type Embedded struct {
	db    *bolt.DB
	cal   limiter.Calendar
	abuse *abuse.Tracker
}

// EmbeddedOptions tune the embedded store.
type EmbeddedOptions struct {
	Calendar limiter.Calendar
	// MaxBatchDelay bounds how long a write waits for others to share its
	// commit; default 2ms. MaxBatchSize caps a batch; default 1000.
	MaxBatchDelay time.Duration
	MaxBatchSize  int
	// NoSync skips fsync. For benchmarks and tests of other things only: a
	// machine crash (not a process crash) can then lose acknowledged writes.
	NoSync bool
}

var (
	bQuota  = []byte("quota")
	bSup    = []byte("suppressions")
	bPaused = []byte("paused")
	bOutbox = []byte("outbox")
)

// OpenEmbedded opens (or creates) the store file at path.
//
// An existing file is verified before it is used: an empty file, a file
// shorter than its last commit says (truncated), meta pages that fail their
// checksums, and pages that are not what the B+tree expects (overwritten)
// are refused with an error wrapping ErrCorrupt, so that a damaged file is
// never served from and never silently replaced by empty state (quotas and
// suppressions gone). The check walks every page once, at open.
func OpenEmbedded(path string, o EmbeddedOptions) (*Embedded, error) {
	if err := precheck(path); err != nil {
		return nil, err
	}
	db, err := openVerified(path, &bolt.Options{Timeout: 2 * time.Second, NoSync: o.NoSync})
	if err != nil {
		return nil, err
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	if o.MaxBatchDelay > 0 {
		db.MaxBatchDelay = o.MaxBatchDelay
	}
	if o.MaxBatchSize > 0 {
		db.MaxBatchSize = o.MaxBatchSize
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bQuota, bSup, bPaused, bOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	return &Embedded{db: db, cal: o.Calendar, abuse: abuse.New(abuse.Options{})}, nil
}

// Close closes the file.
func (e *Embedded) Close() error { return e.db.Close() }

const stateLen = 4 + 8 + 4 + 8 + 8 + 8

func encodeState(s limiter.State) []byte {
	b := make([]byte, 0, stateLen)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Day))
	b = binary.BigEndian.AppendUint64(b, uint64(s.DayCount))
	b = binary.BigEndian.AppendUint32(b, uint32(s.Month))
	b = binary.BigEndian.AppendUint64(b, uint64(s.MonthCount))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.Tokens))
	b = binary.BigEndian.AppendUint64(b, uint64(s.Refilled))
	return b
}

func decodeState(b []byte) (limiter.State, error) {
	if b == nil {
		return limiter.State{}, nil
	}
	if len(b) != stateLen {
		return limiter.State{}, fmt.Errorf("corrupt quota record of %d bytes", len(b))
	}
	return limiter.State{
		Day:        int32(binary.BigEndian.Uint32(b[0:])),
		DayCount:   int64(binary.BigEndian.Uint64(b[4:])),
		Month:      int32(binary.BigEndian.Uint32(b[12:])),
		MonthCount: int64(binary.BigEndian.Uint64(b[16:])),
		Tokens:     math.Float64frombits(binary.BigEndian.Uint64(b[24:])),
		Refilled:   int64(binary.BigEndian.Uint64(b[32:])),
	}, nil
}

// Take checks and consumes atomically (bbolt has one writer at a time) and
// returns once the consumption is durable.
func (e *Embedded) Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error) {
	var out limiter.Outcome
	err := e.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bQuota)
		s, err := decodeState(b.Get([]byte(instance)))
		if err != nil {
			return err
		}
		var next limiter.State
		next, out = e.cal.Decide(s, l, now) // re-run from scratch if bbolt retries the batch
		if out.Verdict != limiter.Allowed {
			return nil
		}
		return b.Put([]byte(instance), encodeState(next))
	})
	if err != nil {
		return limiter.Outcome{}, fmt.Errorf("embedded take %s: %w", instance, err)
	}
	return out, nil
}

// TakeSend checks and counts s's abuse limits, then takes its slow lane
// and quotas in one durable transaction (both or neither), and takes the
// abuse counts back unless both allowed.
func (e *Embedded) TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	return e.abuse.TakeSend(ctx, s, now, e.takeQuota)
}

func (e *Embedded) takeQuota(_ context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	var res abuse.Outcome
	err := e.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bQuota)
		res = abuse.Outcome{} // re-run from scratch if bbolt retries the batch
		var slowNext limiter.State
		slowID := []byte(abuse.SlowLaneID(s.Instance))
		if s.SlowLane.Rate > 0 {
			st, err := decodeState(b.Get(slowID))
			if err != nil {
				return err
			}
			if slowNext, res.Taken = e.cal.Decide(st, s.SlowLane, now); res.Taken.Verdict != limiter.Allowed {
				res.SlowLane = true
				return nil
			}
		}
		st, err := decodeState(b.Get([]byte(s.Instance)))
		if err != nil {
			return err
		}
		var next limiter.State
		if next, res.Taken = e.cal.Decide(st, s.Quota, now); res.Taken.Verdict != limiter.Allowed {
			return nil
		}
		if s.SlowLane.Rate > 0 {
			if err := b.Put(slowID, encodeState(slowNext)); err != nil {
				return err
			}
		}
		return b.Put([]byte(s.Instance), encodeState(next))
	})
	if err != nil {
		return abuse.Outcome{}, fmt.Errorf("embedded take %s: %w", s.Instance, err)
	}
	return res, nil
}

// Violation counts one violation of instance and returns how many fell in
// the last window, this one included.
func (e *Embedded) Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error) {
	return e.abuse.Violation(ctx, instance, window, now)
}

// ResetViolations forgets instance's violations.
func (e *Embedded) ResetViolations(ctx context.Context, instance string) error {
	return e.abuse.ResetViolations(ctx, instance)
}

// Usage reads instance's use without consuming anything.
func (e *Embedded) Usage(_ context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error) {
	var s limiter.State
	err := e.db.View(func(tx *bolt.Tx) error {
		var err error
		s, err = decodeState(tx.Bucket(bQuota).Get([]byte(instance)))
		return err
	})
	if err != nil {
		return limiter.Usage{}, fmt.Errorf("embedded usage %s: %w", instance, err)
	}
	s = e.cal.Current(s, l, now)
	return limiter.Usage{Day: s.Day, Month: s.Month, DailyUsed: s.DayCount, MonthlyUsed: s.MonthCount, Tokens: s.Tokens}, nil
}

func supKey(instance, phone string) []byte {
	k := make([]byte, 0, len(instance)+1+len(phone))
	k = append(k, instance...)
	k = append(k, 0)
	return append(k, phone...)
}

// Suppressed reports whether phone is suppressed for instance.
func (e *Embedded) Suppressed(_ context.Context, instance, phone string) (bool, error) {
	var ok bool
	err := e.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bSup).Get(supKey(instance, phone)) != nil
		return nil
	})
	return ok, err
}

// Suppression returns one suppression, or ErrNotFound.
func (e *Embedded) Suppression(_ context.Context, instance, phone string) (Suppression, error) {
	var s Suppression
	err := e.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bSup).Get(supKey(instance, phone))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &s)
	})
	return s, err
}

// PutSuppression adds or replaces a suppression, durably.
func (e *Embedded) PutSuppression(_ context.Context, s Suppression) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return e.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bSup).Put(supKey(s.Instance, s.Phone), v)
	})
}

// DeleteSuppression removes a suppression, or returns ErrNotFound.
func (e *Embedded) DeleteSuppression(_ context.Context, instance, phone string) error {
	return e.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bSup)
		k := supKey(instance, phone)
		if b.Get(k) == nil {
			return ErrNotFound
		}
		return b.Delete(k)
	})
}

// Suppressions lists instance's suppressions ordered by phone.
func (e *Embedded) Suppressions(_ context.Context, instance string) ([]Suppression, error) {
	var out []Suppression
	prefix := supKey(instance, "")
	err := e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bSup).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var s Suppression
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// Paused reports whether instance is paused for review.
func (e *Embedded) Paused(_ context.Context, instance string) (bool, error) {
	var p bool
	err := e.db.View(func(tx *bolt.Tx) error {
		p = tx.Bucket(bPaused).Get([]byte(instance)) != nil
		return nil
	})
	return p, err
}

// SetPaused pauses or resumes instance, durably.
func (e *Embedded) SetPaused(_ context.Context, instance string, paused bool) error {
	return e.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bPaused)
		if paused {
			return b.Put([]byte(instance), []byte{1})
		}
		return b.Delete([]byte(instance))
	})
}

// Append adds e to the outbox, durably, unless its ID is already there.
func (e *Embedded) Append(_ context.Context, ev Event) error {
	ev.Attempts, ev.VisibleAt = 0, time.Time{}
	v, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return e.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		if b.Get([]byte(ev.ID)) != nil {
			return nil
		}
		return b.Put([]byte(ev.ID), v)
	})
}

// Lease returns up to n events visible at now, oldest first, and hides them
// until now+d. bbolt's single writer makes a lease exclusive.
func (e *Embedded) Lease(_ context.Context, now time.Time, n int, d time.Duration) ([]Event, error) {
	var out []Event
	err := e.db.Update(func(tx *bolt.Tx) error {
		out = out[:0]
		b := tx.Bucket(bOutbox)
		err := b.ForEach(func(_, v []byte) error {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if !ev.VisibleAt.After(now) {
				out = append(out, ev)
			}
			return nil
		})
		if err != nil {
			return err
		}
		sortEvents(out)
		if len(out) > n {
			out = out[:n]
		}
		for i := range out {
			out[i].Attempts++
			out[i].VisibleAt = now.Add(d)
			v, err := json.Marshal(out[i])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(out[i].ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded lease: %w", err)
	}
	return out, nil
}

// Ack removes a delivered event.
func (e *Embedded) Ack(_ context.Context, id string) error {
	return e.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bOutbox).Delete([]byte(id)) })
}

// Release makes an event visible again at at.
func (e *Embedded) Release(_ context.Context, id string, at time.Time) error {
	return e.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOutbox)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return err
		}
		ev.VisibleAt = at
		nv, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
}

// Pending counts the events not yet acknowledged.
func (e *Embedded) Pending(_ context.Context) (int, error) {
	var n int
	err := e.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bOutbox).Stats().KeyN
		return nil
	})
	return n, err
}

// ErrCorrupt is wrapped by the error OpenEmbedded returns for a store file
// that exists but cannot be trusted: empty, truncated, or with damaged
// pages. Restore the file from a backup, or start with empty state by moving
// it aside (ResetEmbedded, `sendguard serve --store-reset`).
var ErrCorrupt = errors.New("embedded store file is corrupt")

// bbolt's on-disk meta page (go.etcd.io/bbolt internal/common): a 16-byte
// page header, then magic, version, page size, flags, the root bucket (root
// page id, sequence), the freelist page id, the high-water page id, the
// transaction id and an FNV-64a checksum of everything before it.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	metaOff        = 16
	metaChecksumAt = 4*4 + 8*2 + 8 + 8 + 8 // 56 bytes of meta before the checksum
	metaLen        = metaChecksumAt + 8
)

type boltMeta struct {
	pageSize uint32
	pgid     uint64 // pages the last commit uses: the file must hold them all
	txid     uint64
}

// readMeta decodes and verifies the meta page at buf.
func readMeta(buf []byte) (boltMeta, bool) {
	if len(buf) < metaOff+metaLen {
		return boltMeta{}, false
	}
	m := buf[metaOff:]
	le := binary.LittleEndian // bbolt writes its structs in host order; sendguard builds for little-endian hosts
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	if h.Sum64() != le.Uint64(m[metaChecksumAt:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// precheck refuses an existing store file that bbolt would either
// reinitialise silently (0 bytes) or crash on (SIGBUS reading pages past
// the end of a truncated file, which no recover can catch), using only the
// file's size and its two meta pages.
func precheck(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return fmt.Errorf("open embedded store %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open embedded store %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return fmt.Errorf("%w: %s is empty (0 bytes), so its quotas, suppressions and pauses are gone; restore it from a backup, or move it aside to start empty (sendguard serve --store-reset)", ErrCorrupt, path)
	}
	head := make([]byte, 64<<10+4096)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("open embedded store %s: %w", path, err)
	}
	head = head[:n]
	// Meta page 0 sits at offset 0; meta page 1 one page further, at an
	// offset given by a valid meta 0 or, when meta 0 is damaged, at one of
	// the page sizes bbolt uses.
	var best boltMeta
	found := false
	consider := func(m boltMeta, ok bool) {
		if ok && (!found || m.txid > best.txid) {
			best, found = m, true
		}
	}
	m0, ok0 := readMeta(head)
	consider(m0, ok0)
	offsets := []int{4096, 8192, 16384, 32768, 65536}
	if ok0 {
		offsets = []int{int(m0.pageSize)}
	}
	for _, off := range offsets {
		if off > 0 && off < len(head) {
			consider(readMeta(head[off:]))
		}
	}
	if !found {
		return fmt.Errorf("%w: %s has no valid meta page (not a sendguard store, or overwritten); restore it from a backup, or move it aside to start empty (sendguard serve --store-reset)", ErrCorrupt, path)
	}
	if need := int64(best.pgid) * int64(best.pageSize); need > size || best.pageSize == 0 {
		return fmt.Errorf("%w: %s is truncated: %d bytes, but its last commit needs %d; restore it from a backup, or move it aside to start empty (sendguard serve --store-reset)", ErrCorrupt, path, size, need)
	}
	return nil
}

// openVerified opens the file and walks every page with bbolt's own
// consistency check. bbolt panics on pages that are not what it expects
// ("Page expected to be: 4"), and a fault on a mapped page is a signal;
// both become an ErrCorrupt error here instead of a crash.
func openVerified(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, fmt.Errorf("%w: %s: %v; restore it from a backup, or move it aside to start empty (sendguard serve --store-reset)", ErrCorrupt, path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if err != nil {
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			return nil, fmt.Errorf("%w: %s: %v; restore it from a backup, or move it aside to start empty (sendguard serve --store-reset)", ErrCorrupt, path, err)
		}
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			if len(problems) < 5 {
				problems = append(problems, e.Error())
			}
		}
		return nil
	})
	if err == nil && len(problems) > 0 {
		err = fmt.Errorf("%w: %s: %s; restore it from a backup, or move it aside to start empty (sendguard serve --store-reset)", ErrCorrupt, path, strings.Join(problems, "; "))
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// ResetEmbedded moves the store file at path aside, to path.corrupt-<UTC
// time>, so that the next OpenEmbedded starts with empty state, and returns
// the new name. The old file is kept for inspection, never deleted.
func ResetEmbedded(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	aside := base
	for i := 1; ; i++ {
		// A link never replaces an existing file, unlike a rename: an
		// earlier damaged file of the same second is kept too.
		err := os.Link(path, aside)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return "", fmt.Errorf("move store file aside: %w", err)
		}
		aside = fmt.Sprintf("%s.%d", base, i)
	}
	if err := os.Remove(path); err != nil {
		return "", fmt.Errorf("move store file aside: %w", err)
	}
	return aside, nil
}
