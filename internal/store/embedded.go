package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"hash/maphash"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
)

// Embedded is the durable store inside the process: one bbolt file (a
// B+tree with copy-on-write pages and fsync'd commits) plus a write-ahead
// log beside it, so quota counters, suppressions, pauses and the outbox
// survive a restart and a kill -9.
//
// Quota counters and token buckets, the state every allowed send writes,
// are served from memory. An allowed decision appends its new state to the
// write-ahead log (<path>.wal-<generation>) and returns only once write(2)
// has taken it (concurrent decisions share one write(2): group write), so a
// kill -9 loses nothing that was acknowledged: the kernel holds the bytes.
// The instance's lock is not held while the log is written: a decision
// on the same instance computes and appends its state meanwhile, and its
// record follows in the log. When the log is fsync'd is the Sync option:
// SyncAlways fsyncs before the answer (concurrent decisions share one
// fsync: group commit); SyncInterval, the default, fsyncs in the
// background at least every SyncInterval (10ms), so a power loss or kernel
// crash (not a process crash) can lose at most that window of allowed
// sends. Every
// CheckpointInterval (1s) the states written since the last checkpoint go
// into the bbolt file in one fsync'd transaction and the log files it
// covers are deleted; OpenEmbedded replays what remains. A denial writes
// nothing: its refill arithmetic is recomputed.
//
// Suppressions, pauses and the outbox are in the bbolt file, written
// through bbolt's group commit (DB.Batch) and fsync'd before the call
// returns, in both modes: they are rare, and an opt-out must never be lost.
// Decisions read pauses from a copy in memory, and suppressions through an
// index in memory (supIndex) that answers a recipient who is not
// suppressed without reading the file.
//
// bbolt locks its file: one process at a time. Replicas share state through
// the Redis store instead.
//
// The abuse counters are in the process, in a bounded abuse.Tracker: one
// process owns the file, so they are exact, and a restart forgets them.
type Embedded struct {
	db     *bolt.DB
	path   string
	cal    limiter.Calendar
	abuse  *abuse.Tracker
	log    *slog.Logger
	always bool // fsync the log before answering
	noSync bool

	mu    sync.RWMutex
	quota map[string]*instanceState

	// paused mirrors the paused bucket, for Paused on every decision
	// without a bbolt read transaction (whose begin takes the database's
	// meta lock, a mutex every decision shared). It is replaced, never
	// modified, under pausedMu, after the bucket's commit.
	paused   atomic.Pointer[map[string]struct{}]
	pausedMu sync.Mutex

	// sup indexes the suppressions bucket (see supIndex), for Suppressed
	// on every decision without a bbolt read transaction for a recipient
	// who is not suppressed. Every writer of the bucket adds its keys'
	// hashes under supMu BEFORE its commit, so once the write returns
	// every later Suppressed finds the hash and confirms it in the file; a
	// deletion leaves its hash (a read confirms it false) until the next
	// open. Built at open by two cursor scans; nil once closed.
	sup     atomic.Pointer[supIndex]
	supMu   sync.Mutex
	supSeed maphash.Seed

	// A decision appends its record to pending under its instance's lock
	// and walMu (a short critical section that fixes the record's place in
	// the log), releases both, then waits until write(2) has taken the log
	// up to its record (waitWritten): one decision writes everything
	// pending with one write(2) (group write) while the others wait for it.
	// No instance lock is held across a write(2) or an fsync.
	//
	// walMu guards the log file, pending and what was written. Lock order:
	// an instance's mu, then walMu; syncMu, then writeMu, then walMu.
	walMu    sync.Mutex
	wal      *os.File
	walGen   uint64
	walSize  int64               // bytes written to wal
	appended int64               // bytes appended to the log since open (pending included), over all its files
	pending  []byte              // records appended and not yet written, in log order
	spare    []byte              // the other buffer of pending's double buffer
	dirty    map[string]struct{} // ids appended since the last checkpoint began
	walErr   error               // sticky: the log can no longer be trusted
	written  atomic.Int64        // of appended, write(2) has taken this many
	flushing bool                // a group write is in flight
	flushed  chan struct{}       // closed when it ends; made by its first waiter
	writeMu  sync.Mutex          // one write(2) of the log at a time
	synced   atomic.Int64        // written up to here is fsync'd
	syncMu   sync.Mutex          // one fsync of the log at a time; rotation
	// beforeWrite, when set (by tests), runs before each write(2) of the
	// log, with writeMu held.
	beforeWrite func()
	ckMu        sync.Mutex // one checkpoint at a time
	retired     []uint64   // log generations a committed checkpoint will cover
	stop        chan struct{}
	done        chan struct{}
	close       sync.Once
	closeErr    error
}

// Sync is when the embedded store's write-ahead log is fsync'd.
type Sync int

const (
	// SyncInterval writes a decision's state to the log (write(2)) before
	// the answer and fsyncs in the background at least every interval: a
	// process crash loses nothing acknowledged, a power loss at most the
	// interval. The default.
	SyncInterval Sync = iota
	// SyncAlways fsyncs the log before the answer (group commit).
	SyncAlways
)

// ParseSync reads "interval" or "always".
func ParseSync(s string) (Sync, error) {
	switch s {
	case "interval":
		return SyncInterval, nil
	case "always":
		return SyncAlways, nil
	}
	return 0, fmt.Errorf("sync %q: must be always or interval", s)
}

// EmbeddedOptions tune the embedded store.
type EmbeddedOptions struct {
	Calendar limiter.Calendar
	// Sync is when the write-ahead log is fsync'd; SyncInterval (the zero
	// value) fsyncs at least every SyncInterval, default 10ms.
	Sync         Sync
	SyncInterval time.Duration
	// CheckpointInterval is how often quota states move from the log into
	// the bbolt file; default 1s.
	CheckpointInterval time.Duration
	// MaxBatchDelay bounds how long a bbolt write (suppressions, pauses,
	// the outbox) waits for others to share its commit; default 2ms.
	// MaxBatchSize caps a batch; default 1000.
	MaxBatchDelay time.Duration
	MaxBatchSize  int
	// NoSync skips every fsync, of the log and of bbolt. For benchmarks and
	// tests of other things only: a machine crash (not a process crash) can
	// then lose acknowledged writes, and damage the bbolt file.
	NoSync bool
	// Log receives background failures (a checkpoint, an fsync); default
	// discards them.
	Log *slog.Logger
}

var (
	bQuota  = []byte("quota")
	bSup    = []byte("suppressions")
	bPaused = []byte("paused")
	bOutbox = []byte("outbox")
	bMeta   = []byte("meta")
	// bReceipts holds the refund receipts (instance NUL decision id ->
	// receipt) a checkpoint covers; see Refund.
	bReceipts = []byte("receipts")
	// kWALGen in bMeta is the first log generation the bbolt file does not
	// hold: log files of older generations are covered by a checkpoint.
	kWALGen = []byte("wal_gen")
)

// OpenEmbedded opens (or creates) the store file at path and replays its
// write-ahead log.
//
// An existing file is verified before it is used: an empty file, a file
// shorter than its last commit says (truncated), meta pages that fail their
// checksums, and pages that are not what the B+tree expects (overwritten)
// are refused with an error wrapping ErrCorrupt, so that a damaged file is
// never served from and never silently replaced by empty state (quotas and
// suppressions gone). The check walks every page once, at open. A log's
// torn tail (the records a crash cut short) is dropped: none of them was
// acknowledged as durable.
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
	paused := map[string]struct{}{}
	seed := maphash.MakeSeed()
	var sups *supIndex
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bQuota, bSup, bPaused, bOutbox, bMeta, bReceipts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		b := tx.Bucket(bSup)
		var err error
		sups, err = scanSupIndex(b.Stats().KeyN, func(yield func(uint64)) error {
			c := b.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				yield(maphash.Bytes(seed, k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bPaused).ForEach(func(k, _ []byte) error {
			paused[string(k)] = struct{}{}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	e := &Embedded{
		db: db, path: path, cal: o.Calendar, abuse: abuse.New(abuse.Options{}),
		log: o.Log, always: o.Sync == SyncAlways, noSync: o.NoSync,
		quota: make(map[string]*instanceState), dirty: make(map[string]struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
		supSeed: seed,
	}
	e.paused.Store(&paused)
	e.sup.Store(sups)
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if err := e.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	interval, every := o.SyncInterval, o.CheckpointInterval
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	if every <= 0 {
		every = time.Second
	}
	go e.run(interval, every)
	return e, nil
}

// recover loads the quota states from the bbolt file, replays the log
// files the last checkpoint does not cover, checkpoints the result and
// starts a new log file.
func (e *Embedded) recover() error {
	var covered uint64
	err := e.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(kWALGen); len(v) == 8 {
			covered = binary.BigEndian.Uint64(v)
		}
		err := tx.Bucket(bQuota).ForEach(func(k, v []byte) error {
			s, err := decodeState(v)
			if err != nil {
				return fmt.Errorf("%w: quota of %q: %v", ErrCorrupt, k, err)
			}
			e.quota[string(k)] = &instanceState{s: s, rc: receipts{track: true}}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bReceipts).ForEach(func(k, v []byte) error {
			inst, id, ok := bytes.Cut(k, []byte{0})
			r, err := decodeReceipt(v)
			if !ok || err != nil {
				return fmt.Errorf("%w: receipt %q: %v", ErrCorrupt, k, err)
			}
			e.recoverReceipt(string(inst), string(id), r)
			return nil
		})
	})
	if err != nil {
		return err
	}
	gens, err := walFiles(e.path)
	if err != nil {
		return err
	}
	next := covered
	replayed := map[string]struct{}{}
	var logs []string
	for _, g := range gens {
		name := walName(e.path, g)
		logs = append(logs, name)
		if g < covered {
			continue // checkpointed; its removal was cut short
		}
		err := replayWAL(name, func(id string, s limiter.State) {
			st := e.quota[id]
			if st == nil {
				st = &instanceState{rc: receipts{track: true}}
				e.quota[id] = st
			}
			st.s = s
			replayed[id] = struct{}{}
		}, func(instance, id string, r receipt) {
			e.recoverReceipt(instance, id, r)
			replayed[instance] = struct{}{}
		})
		if err != nil {
			return err
		}
		next = g + 1
	}
	for _, st := range e.quota {
		st.rc.requeue()
	}
	if len(replayed) > 0 {
		if err := e.commit(replayed, next); err != nil {
			return err
		}
	}
	for _, name := range logs {
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("remove checkpointed write-ahead log: %w", err)
		}
	}
	if e.wal, err = createWAL(walName(e.path, next)); err != nil {
		return err
	}
	e.walGen = next
	return nil
}

// commit writes the current states of ids into the bbolt file, and gen as
// the first log generation it does not cover, in one fsync'd transaction.
//
// With the states go the receipts of those ids (instances) that changed
// since the last checkpoint: kept ones written, dropped ones deleted. When
// the commit fails, they are noted as changed again for the next one.
func (e *Embedded) commit(ids map[string]struct{}, gen uint64) error {
	type kv struct{ k, v []byte }
	recs := make([]kv, 0, len(ids))
	var rcs []kv // v nil: delete
	var arena []byte
	type taken struct {
		st    *instanceState
		uuids []uuid
		texts []string
	}
	var changed []taken
	// put appends the receipt key (instance NUL decision id) of rid and
	// the receipt r (found: false: deleted) to rcs. Keys and values go
	// into one arena: bbolt keeps them until the commit, and a busy
	// checkpoint writes thousands.
	put := func(id string, rid []byte, r receipt, found bool) {
		if need := len(id) + 1 + len(rid) + receiptLen; cap(arena)-len(arena) < need {
			arena = make([]byte, 0, max(64<<10, need))
		}
		start := len(arena)
		arena = append(append(append(arena, id...), 0), rid...)
		k := arena[start:len(arena):len(arena)]
		if !found {
			rcs = append(rcs, kv{k, nil})
			return
		}
		start = len(arena)
		arena = appendReceipt(arena, r)
		rcs = append(rcs, kv{k, arena[start:len(arena):len(arena)]})
	}
	var text []byte
	for id := range ids {
		e.mu.RLock()
		st := e.quota[id]
		e.mu.RUnlock()
		st.mu.Lock()
		v := encodeState(st.s)
		ch := taken{st, st.rc.uuids.changed, st.rc.texts.changed}
		st.rc.uuids.changed, st.rc.texts.changed = nil, nil
		for _, k := range ch.uuids {
			r, ok := st.rc.uuids.m[k]
			text = k.appendText(text[:0])
			put(id, text, r.receipt, ok)
		}
		for _, k := range ch.texts {
			r, ok := st.rc.texts.m[k]
			put(id, []byte(k), r.receipt, ok)
		}
		st.mu.Unlock()
		if len(ch.uuids) > 0 || len(ch.texts) > 0 {
			changed = append(changed, ch)
		}
		recs = append(recs, kv{[]byte(id), v})
	}
	slices.SortFunc(recs, func(a, b kv) int { return bytes.Compare(a.k, b.k) }) // sequential inserts into the B+tree
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bQuota)
		for _, r := range recs {
			if err := b.Put(r.k, r.v); err != nil {
				return err
			}
		}
		rb := tx.Bucket(bReceipts)
		for _, r := range rcs {
			var err error
			if r.v == nil {
				err = rb.Delete(r.k)
			} else {
				err = rb.Put(r.k, r.v)
			}
			if err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(kWALGen, binary.BigEndian.AppendUint64(nil, gen))
	})
	if err != nil {
		for _, c := range changed {
			c.st.mu.Lock()
			c.st.rc.uuids.changed = append(c.st.rc.uuids.changed, c.uuids...)
			c.st.rc.texts.changed = append(c.st.rc.texts.changed, c.texts...)
			c.st.mu.Unlock()
		}
	}
	return err
}

// recoverReceipt keeps a receipt read from the file or the log (at open:
// no lock needed); the queue is rebuilt once all are read.
func (e *Embedded) recoverReceipt(instance, id string, r receipt) {
	st := e.quota[instance]
	if st == nil {
		st = &instanceState{rc: receipts{track: true}}
		e.quota[instance] = st
	}
	st.rc.recover(id, r)
}

// run fsyncs the log every interval (SyncInterval) and checkpoints every
// checkpoint interval, until Close.
func (e *Embedded) run(interval, every time.Duration) {
	defer close(e.done)
	var syncs <-chan time.Time
	if !e.always && !e.noSync {
		t := time.NewTicker(interval)
		defer t.Stop()
		syncs = t.C
	}
	ck := time.NewTicker(every)
	defer ck.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-syncs:
			if err := e.syncTo(e.written.Load()); err != nil {
				e.log.Error("embedded store: fsync of the write-ahead log failed; decisions fail closed until a restart", "err", err)
			}
		case <-ck.C:
			if err := e.checkpoint(); err != nil {
				e.log.Error("embedded store: checkpoint failed; the write-ahead log keeps the state and is replayed at the next start", "err", err)
			}
		}
	}
}

// checkpoint starts a new log file, writes the states written since the
// last checkpoint into the bbolt file, and deletes the log files that
// commit covers. Writers continue into the new file meanwhile: a state
// appended to the old file was set in memory under its instance's lock
// before the switch, so the snapshot read after the switch holds it.
func (e *Embedded) checkpoint() error {
	e.ckMu.Lock()
	defer e.ckMu.Unlock()
	e.walMu.Lock()
	idle, broken := len(e.dirty) == 0, e.walErr
	e.walMu.Unlock()
	if idle || broken != nil {
		return broken
	}
	gen := e.walGen + 1 // walGen changes only here and in recover
	f, err := createWAL(walName(e.path, gen))
	if err != nil {
		return err
	}
	e.syncMu.Lock()
	e.writeMu.Lock()
	// What was appended so far goes into the old file. A record appended
	// between this write and the switch goes into the new one: its
	// instance is in the dirty set committed below (its state, read from
	// memory, is at least the record's), and replaying the new file on top
	// of the commit is last-record-wins. A failed write makes the log
	// error sticky: the commit is skipped.
	err = e.flushLocked()
	if err != nil {
		e.writeMu.Unlock()
		e.syncMu.Unlock()
		f.Close()
		os.Remove(f.Name())
		return err
	}
	e.walMu.Lock()
	old, oldGen, dirty, at := e.wal, e.walGen, e.dirty, e.written.Load()
	e.wal, e.walGen, e.walSize, e.dirty = f, gen, 0, make(map[string]struct{}, len(dirty))
	e.walMu.Unlock()
	e.writeMu.Unlock()
	if !e.noSync {
		err = old.Sync() // the old file's tail, before synced moves past it
	}
	if err == nil && e.synced.Load() < at {
		e.synced.Store(at)
	}
	old.Close()
	e.syncMu.Unlock()
	if err != nil {
		e.fail(fmt.Errorf("fsync write-ahead log: %w", err))
		return err
	}
	e.retired = append(e.retired, oldGen)
	if err := e.commit(dirty, gen); err != nil {
		e.walMu.Lock()
		for id := range dirty { // the next checkpoint writes them again
			e.dirty[id] = struct{}{}
		}
		e.walMu.Unlock()
		return fmt.Errorf("checkpoint: %w", err)
	}
	for _, g := range e.retired {
		if err := os.Remove(walName(e.path, g)); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.log.Warn("embedded store: remove checkpointed write-ahead log", "err", err)
		}
	}
	e.retired = e.retired[:0]
	return nil
}

// fail makes err sticky: every later write fails (closed) with it.
func (e *Embedded) fail(err error) {
	e.walMu.Lock()
	if e.walErr == nil {
		e.walErr = err
	}
	e.walMu.Unlock()
}

// appendLog appends one record of entries to the log (pending, not yet
// written) and returns the log position after it: pass it to durable,
// after releasing the instance locks, before answering.
func (e *Embedded) appendLog(entries ...walEntry) (int64, error) {
	return e.appendLogRc(entries, nil)
}

// appendLogRc is appendLog of states and receipts in one record. Callers
// hold the locks of the instances whose states it carries, so records of
// one instance are appended, and written, in the order of its decisions.
func (e *Embedded) appendLogRc(entries []walEntry, rcs []walReceipt) (int64, error) {
	for _, en := range entries {
		if len(en.id) > maxIDLen {
			return 0, fmt.Errorf("id of %d bytes: longer than %d", len(en.id), maxIDLen)
		}
	}
	for _, r := range rcs {
		if len(r.id) > maxIDLen {
			return 0, fmt.Errorf("decision id of %d bytes: longer than %d", len(r.id), maxIDLen)
		}
	}
	e.walMu.Lock()
	defer e.walMu.Unlock()
	if e.walErr != nil {
		return 0, e.walErr
	}
	n := len(e.pending)
	e.pending = appendRecord(e.pending, entries, rcs)
	e.appended += int64(len(e.pending) - n)
	for _, en := range entries {
		e.dirty[en.id] = struct{}{}
	}
	for _, r := range rcs {
		e.dirty[r.instance] = struct{}{}
	}
	return e.appended, nil
}

// waitWritten returns once write(2) has taken the log up to at (the kernel
// holds the bytes: a kill -9 loses none of them), or with the sticky log
// error when it cannot. Concurrent callers share one write(2) (group
// write): when none is in flight, the caller writes everything pending;
// otherwise it waits for the one in flight to end (all its waiters wake at
// once) and looks again.
func (e *Embedded) waitWritten(at int64) error {
	for {
		if e.written.Load() >= at {
			return nil
		}
		e.walMu.Lock()
		if e.written.Load() >= at { // again under walMu
			e.walMu.Unlock()
			return nil
		}
		if err := e.walErr; err != nil {
			e.walMu.Unlock()
			return err
		}
		if e.flushing {
			if e.flushed == nil { // the first to wait for this write
				e.flushed = make(chan struct{})
			}
			ch := e.flushed
			e.walMu.Unlock()
			<-ch
			continue
		}
		e.flushing = true
		e.walMu.Unlock()
		e.writeMu.Lock()
		err := e.flushLocked()
		e.writeMu.Unlock()
		e.walMu.Lock()
		ch := e.flushed
		e.flushing, e.flushed = false, nil
		e.walMu.Unlock()
		if ch != nil {
			close(ch)
		}
		if err != nil {
			return err
		}
	}
}

// flushLocked writes everything pending to the log file with one
// write(2). The caller holds writeMu. A failed write makes the log error
// sticky: the records pending with it (whose states are already in
// memory) and every later one fail, closed, until a restart, which
// replays what was written.
func (e *Embedded) flushLocked() error {
	e.walMu.Lock()
	if e.walErr != nil {
		err := e.walErr
		e.walMu.Unlock()
		return err
	}
	buf, end, f, size := e.pending, e.appended, e.wal, e.walSize
	e.pending, e.spare = e.spare[:0], nil
	e.walMu.Unlock()
	if len(buf) == 0 {
		e.spare = buf
		return nil
	}
	if e.beforeWrite != nil {
		e.beforeWrite()
	}
	n, err := f.Write(buf)
	e.walMu.Lock()
	defer e.walMu.Unlock()
	if err != nil {
		// A torn record would hide every record after it from replay:
		// cut it off; stop writing either way.
		err = fmt.Errorf("write-ahead log: %w", err)
		if n > 0 {
			if terr := f.Truncate(size); terr != nil {
				err = fmt.Errorf("write-ahead log unusable after a failed write: %w (truncating: %w)", err, terr)
			}
		}
		if e.walErr == nil {
			e.walErr = err
		}
		return err
	}
	e.walSize += int64(n)
	e.written.Store(end)
	if cap(buf) <= 1<<20 { // keep the buffer, unless a burst made it huge
		e.spare = buf[:0]
	}
	return nil
}

// durable returns once the log is written (write(2)) up to at and, under
// SyncAlways, fsync'd up to at; under SyncInterval the background fsync
// covers it within the interval. Call it with no instance lock held.
func (e *Embedded) durable(at int64) error {
	if err := e.waitWritten(at); err != nil {
		return err
	}
	if !e.always || e.noSync {
		return nil
	}
	return e.syncTo(at)
}

// syncTo fsyncs the log up to at at least. Concurrent callers share one
// fsync: whoever holds syncMu fsyncs everything written so far.
func (e *Embedded) syncTo(at int64) error {
	if e.synced.Load() >= at {
		return nil
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if e.synced.Load() >= at {
		return nil
	}
	e.walMu.Lock()
	f, w, broken := e.wal, e.written.Load(), e.walErr
	e.walMu.Unlock()
	if broken != nil {
		return broken
	}
	if err := f.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the pages:
		// nothing written since the last good one can be trusted.
		err = fmt.Errorf("fsync write-ahead log: %w", err)
		e.fail(err)
		return err
	}
	e.synced.Store(w)
	return nil
}

// Close checkpoints everything into the bbolt file, removes the (then
// empty) log and closes the file. Closing twice is a no-op.
func (e *Embedded) Close() error {
	e.close.Do(func() {
		close(e.stop)
		<-e.done
		err := e.checkpoint()
		e.writeMu.Lock()
		if ferr := e.flushLocked(); err == nil {
			err = ferr // what decisions appended since the checkpoint
		}
		e.walMu.Lock()
		f, gen, empty := e.wal, e.walGen, e.walSize == 0 && len(e.dirty) == 0
		if e.walErr == nil {
			e.walErr = errors.New("embedded store is closed")
		}
		e.walMu.Unlock()
		e.writeMu.Unlock()
		e.syncMu.Lock()
		cerr := f.Close()
		e.syncMu.Unlock()
		if err == nil && cerr == nil && empty {
			cerr = os.Remove(walName(e.path, gen))
		}
		e.closeErr = errors.Join(err, cerr, e.db.Close())
		e.paused.Store(nil) // Paused fails from now on, as the file's reads do
		e.supMu.Lock()
		e.sup.Store(nil) // and Suppressed, and the writers of suppressions
		e.supMu.Unlock()
	})
	return e.closeErr
}

const stateLen = 4 + 8 + 4 + 8 + 8 + 8

func appendState(b []byte, s limiter.State) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(s.Day))
	b = binary.BigEndian.AppendUint64(b, uint64(s.DayCount))
	b = binary.BigEndian.AppendUint32(b, uint32(s.Month))
	b = binary.BigEndian.AppendUint64(b, uint64(s.MonthCount))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.Tokens))
	b = binary.BigEndian.AppendUint64(b, uint64(s.Refilled))
	return b
}

func encodeState(s limiter.State) []byte { return appendState(make([]byte, 0, stateLen), s) }

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

func (e *Embedded) instance(id string) *instanceState {
	e.mu.RLock()
	st := e.quota[id]
	e.mu.RUnlock()
	if st != nil {
		return st
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if st = e.quota[id]; st == nil {
		st = &instanceState{rc: receipts{track: true}}
		e.quota[id] = st
	}
	return st
}

// Take checks and consumes atomically (under the instance's lock) and
// returns once the consumption is in the log (and fsync'd, under
// SyncAlways). When the log write fails, the consumption stays counted in
// memory and every later write fails (closed) until a restart.
func (e *Embedded) Take(_ context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error) {
	st := e.instance(instance)
	st.mu.Lock()
	next, out := e.cal.Decide(st.s, l, now)
	if out.Verdict != limiter.Allowed {
		st.mu.Unlock()
		return out, nil
	}
	at, err := e.appendLog(walEntry{instance, next})
	if err == nil {
		st.s = next
	}
	st.mu.Unlock()
	if err == nil {
		err = e.durable(at)
	}
	if err != nil {
		return limiter.Outcome{}, fmt.Errorf("embedded take %s: %w", instance, err)
	}
	return out, nil
}

// TakeSend checks and counts s's abuse limits, then takes its slow lane
// and quotas in one log record (both or neither), and takes the abuse
// counts back unless both allowed.
func (e *Embedded) TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	return e.abuse.TakeSendUndo(ctx, s, now, e.takeQuota)
}

// takeQuota takes the slow lane and the quotas; an allowed send with a
// decision id writes its receipt in the same log record as its states.
func (e *Embedded) takeQuota(_ context.Context, s abuse.Send, now time.Time, undo abuse.Undo) (abuse.Outcome, error) {
	st := e.instance(s.Instance)
	st.mu.Lock() // always the instance before its slow lane
	var slow *instanceState
	var slowNext limiter.State
	var slowID string
	if s.SlowLane.Rate > 0 {
		slowID = abuse.SlowLaneID(s.Instance)
		slow = e.instance(slowID)
		slow.mu.Lock()
		var out limiter.Outcome
		if slowNext, out = e.cal.Decide(slow.s, s.SlowLane, now); out.Verdict != limiter.Allowed {
			slow.mu.Unlock()
			st.mu.Unlock()
			return abuse.Outcome{Taken: out, SlowLane: true}, nil
		}
	}
	next, out := e.cal.Decide(st.s, s.Quota, now)
	var at int64
	var err error
	if out.Verdict == limiter.Allowed {
		var ents [2]walEntry
		var rcBuf [1]walReceipt
		rcs := rcBuf[:0]
		entries := append(ents[:0], walEntry{s.Instance, next})
		if slow != nil {
			entries = append(entries, walEntry{slowID, slowNext})
		}
		var r receipt
		if s.Decision != "" {
			r = newReceipt(next, s.Quota.Burst, slow != nil, s.SlowLane.Burst, now)
			rcs = append(rcs, walReceipt{s.Instance, s.Decision, r})
		}
		at, err = e.appendLogRc(entries, rcs)
		if err == nil {
			st.s = next
			if slow != nil {
				slow.s = slowNext
			}
			if s.Decision != "" {
				st.rc.put(s.Decision, r, undo, now.UnixNano())
			}
		}
	}
	if slow != nil {
		slow.mu.Unlock()
	}
	st.mu.Unlock()
	if err == nil && out.Verdict == limiter.Allowed {
		err = e.durable(at)
	}
	if err != nil {
		return abuse.Outcome{}, fmt.Errorf("embedded take %s: %w", s.Instance, err)
	}
	return abuse.Outcome{Taken: out}, nil
}

// Refund gives back what the allowed send of decision id took from
// instance, as Memory.Refund does, and returns once the new states and the
// refunded receipt are in the log (one record, with one write(2); fsync'd
// under SyncAlways): a refund acknowledged survives a kill -9, and so does
// the mark that makes a repeated one a duplicate. The abuse counts, kept
// in the process, are given back too.
func (e *Embedded) Refund(_ context.Context, instance, id string, now time.Time) (RefundResult, error) {
	e.mu.RLock()
	st := e.quota[instance]
	e.mu.RUnlock()
	if st == nil || strings.HasSuffix(instance, slowSuffix) {
		return RefundUnknown, nil
	}
	st.mu.Lock()
	r, undo, res, ok := st.rc.refundable(instance, id, now.UnixNano())
	if !ok {
		st.mu.Unlock()
		return res, nil
	}
	var ents [2]walEntry
	entries := append(ents[:0], walEntry{instance, giveBack(st.s, r.day, r.month, r.burst)})
	var slow *instanceState
	if r.slow {
		slow = e.instance(abuse.SlowLaneID(instance))
		slow.mu.Lock()
		entries = append(entries, walEntry{abuse.SlowLaneID(instance), giveBack(slow.s, r.day, r.month, r.slowBurst)})
	}
	done := r
	done.done = true
	at, err := e.appendLogRc(entries, []walReceipt{{instance, id, done}})
	if err == nil {
		st.s = entries[0].s
		if slow != nil {
			slow.s = entries[1].s
		}
		st.rc.refunded(id)
	}
	if slow != nil {
		slow.mu.Unlock()
	}
	st.mu.Unlock()
	if err == nil {
		err = e.durable(at)
	}
	if err != nil {
		return RefundUnknown, fmt.Errorf("embedded refund %s: %w", instance, err)
	}
	e.abuse.Undo(undo)
	return Refunded, nil
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
	e.mu.RLock()
	st := e.quota[instance]
	e.mu.RUnlock()
	var s limiter.State
	if st != nil {
		st.mu.Lock()
		s = st.s
		st.mu.Unlock()
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

// supV1 marks a suppression value in the compact encoding: this byte, the
// creation time as a varint of Unix seconds and a uvarint of nanoseconds,
// then the reason and the source, each a uvarint length and its bytes. The
// instance and the phone are the key's. Values written before it are JSON
// (they start with '{') and are still read.
const supV1 = 0x01

// encodeSup is s's value in the compact encoding: about 30 bytes where
// the JSON was 150, so a million suppressions make a file of ~70 MB that
// opens (every page checked) in a fraction of a second.
func encodeSup(s Suppression) []byte {
	b := make([]byte, 0, 1+10+5+2+len(s.Reason)+len(s.Source))
	b = append(b, supV1)
	b = binary.AppendVarint(b, s.CreatedAt.Unix())
	b = binary.AppendUvarint(b, uint64(s.CreatedAt.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(len(s.Reason)))
	b = append(b, s.Reason...)
	b = binary.AppendUvarint(b, uint64(len(s.Source)))
	return append(b, s.Source...)
}

// decodeSup reads the suppression stored under key k as v, in either
// encoding.
func decodeSup(k, v []byte) (Suppression, error) {
	var s Suppression
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &s)
		return s, err
	}
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(v) == 0 || v[0] != supV1 {
		return s, fmt.Errorf("%w: suppression %q has an unknown encoding", ErrCorrupt, k)
	}
	s.Instance, s.Phone = string(k[:i]), string(k[i+1:])
	bad := fmt.Errorf("%w: suppression %q is cut short", ErrCorrupt, k)
	v = v[1:]
	sec, n := binary.Varint(v)
	if n <= 0 {
		return s, bad
	}
	v = v[n:]
	nsec, n := binary.Uvarint(v)
	if n <= 0 || nsec >= 1e9 {
		return s, bad
	}
	v = v[n:]
	str := func() (string, bool) {
		l, n := binary.Uvarint(v)
		if n <= 0 || uint64(len(v)-n) < l {
			return "", false
		}
		out := string(v[n : n+int(l)])
		v = v[n+int(l):]
		return out, true
	}
	var ok1, ok2 bool
	s.Reason, ok1 = str()
	s.Source, ok2 = str()
	if !ok1 || !ok2 || len(v) != 0 {
		return s, bad
	}
	s.CreatedAt = time.Unix(sec, int64(nsec)).UTC()
	return s, nil
}

// Suppressed reports whether phone is suppressed for instance. A
// recipient who is not suppressed is answered from the in-memory index
// (sup), without a read of the file and without an allocation; a
// candidate the index holds is confirmed by a bbolt read.
func (e *Embedded) Suppressed(_ context.Context, instance, phone string) (bool, error) {
	x := e.sup.Load()
	if x == nil {
		return false, errClosed
	}
	if !x.has(supHash(e.supSeed, instance, phone)) {
		return false, nil
	}
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
		k := supKey(instance, phone)
		v := tx.Bucket(bSup).Get(k)
		if v == nil {
			return ErrNotFound
		}
		var err error
		s, err = decodeSup(k, v)
		return err
	})
	return s, err
}

// PutSuppression adds or replaces a suppression, durably: Suppressed
// answers true once it returns.
func (e *Embedded) PutSuppression(_ context.Context, s Suppression) error {
	v := encodeSup(s)
	k := supKey(s.Instance, s.Phone)
	if err := e.index([]uint64{maphash.Bytes(e.supSeed, k)}); err != nil {
		return err
	}
	return e.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bSup).Put(k, v)
	})
}

// errClosed is what the in-memory reads return once the store is closed,
// as the file's reads do.
var errClosed = errors.New("embedded store is closed")

// index adds hs (sorted) to the suppression index. Call it before the
// commit that writes their keys, so that the commit is never visible in
// the file while Suppressed would still answer false from memory.
func (e *Embedded) index(hs []uint64) error {
	e.supMu.Lock()
	defer e.supMu.Unlock()
	x := e.sup.Load()
	if x == nil {
		return errClosed
	}
	e.sup.Store(x.with(hs))
	return nil
}

// AddSuppressions adds every suppression of sups not in the store yet,
// keeping existing ones as they are; see Memory.AddSuppressions. It writes
// AddChunk suppressions per fsync'd bbolt transaction, in key order, so a
// million take a few seconds rather than a commit each. Each chunk is
// atomic, the batch is not: an error (a full disk) leaves the chunks before
// it written, and calling again with the same batch completes it.
func (e *Embedded) AddSuppressions(_ context.Context, sups []Suppression) (int, error) {
	if err := validBatch(sups); err != nil {
		return 0, err
	}
	type kv struct {
		k []byte
		i int
	}
	keys := make([]kv, len(sups))
	for i, s := range sups {
		keys[i] = kv{supKey(s.Instance, s.Phone), i}
	}
	// Of a repeated key the first comes first, and wins.
	slices.SortFunc(keys, func(a, b kv) int {
		if c := bytes.Compare(a.k, b.k); c != 0 {
			return c
		}
		return a.i - b.i
	})
	added := 0
	hs := make([]uint64, 0, min(AddChunk, len(keys)))
	for start := 0; start < len(keys); start += AddChunk {
		chunk := keys[start:min(start+AddChunk, len(keys))]
		hs = hs[:0]
		for _, kv := range chunk {
			hs = append(hs, maphash.Bytes(e.supSeed, kv.k))
		}
		slices.Sort(hs)
		if err := e.index(hs); err != nil {
			return added, fmt.Errorf("add suppressions: %w", err)
		}
		n := 0
		err := e.db.Update(func(tx *bolt.Tx) error {
			n = 0
			b := tx.Bucket(bSup)
			// Keys arrive in order: fill pages instead of splitting them
			// in half, so a million suppressions take half the file.
			b.FillPercent = 0.95
			for _, kv := range chunk {
				if b.Get(kv.k) != nil {
					continue
				}
				if err := b.Put(kv.k, encodeSup(sups[kv.i])); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return added, fmt.Errorf("add suppressions: %w", err)
		}
		added += n
	}
	return added, nil
}

// DeleteSuppression removes a suppression, or returns ErrNotFound. Its
// hash stays in the index until the next open (8 bytes; a Suppressed of it
// reads the file and answers false): taking it out after the commit could
// race a PutSuppression of the same recipient, whose hash must stay.
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

// Suppressions lists all of instance's suppressions ordered by phone, as
// one page (the admin API pages with SuppressionPage).
func (e *Embedded) Suppressions(ctx context.Context, instance string) ([]Suppression, error) {
	list, _, err := e.SuppressionPage(ctx, instance, "", math.MaxInt)
	return list, err
}

// Paused reports whether instance is paused for review.
func (e *Embedded) Paused(_ context.Context, instance string) (bool, error) {
	m := e.paused.Load()
	if m == nil {
		return false, errClosed
	}
	_, p := (*m)[instance]
	return p, nil
}

// SetPaused pauses or resumes instance, durably: Paused answers the new
// state once it is committed.
func (e *Embedded) SetPaused(_ context.Context, instance string, paused bool) error {
	e.pausedMu.Lock()
	defer e.pausedMu.Unlock()
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bPaused)
		if paused {
			return b.Put([]byte(instance), []byte{1})
		}
		return b.Delete([]byte(instance))
	})
	if err != nil {
		return err
	}
	next := maps.Clone(*e.paused.Load())
	if paused {
		next[instance] = struct{}{}
	} else {
		delete(next, instance)
	}
	e.paused.Store(&next)
	return nil
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
// time>, and its write-ahead log files with it (to <that
// name>.wal-<generation>), so that the next OpenEmbedded starts with empty
// state, and returns the new name. The old files are kept for inspection,
// never deleted.
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
	gens, err := walFiles(path)
	if err != nil {
		return "", fmt.Errorf("move write-ahead log aside: %w", err)
	}
	for _, g := range gens {
		if err := os.Rename(walName(path, g), walName(aside, g)); err != nil {
			return "", fmt.Errorf("move write-ahead log aside: %w", err)
		}
	}
	return aside, nil
}
