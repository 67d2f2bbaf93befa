package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

var (
	unlimited = limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e12, Burst: 1 << 40}
	// Instance ids in several scripts: the log stores them as bytes.
	multilingual = []string{"shop", "متجر_١", "दुकान", "dükkân-İ", "🛒store", "cafe\u0301", "اردو_دکان"}
	t0           = time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
)

func openOpts(t *testing.T, path string, o store.EmbeddedOptions) *store.Embedded {
	t.Helper()
	s, err := store.OpenEmbedded(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func used(t *testing.T, s *store.Embedded, instance string) int64 {
	t.Helper()
	u, err := s.Usage(context.Background(), instance, unlimited, t0)
	if err != nil {
		t.Fatal(err)
	}
	return u.DailyUsed
}

// TestEmbeddedCrashKeepsAcknowledged: in both sync modes, a store
// abandoned mid-load as a kill -9 would (no Close, no final checkpoint or
// fsync) comes back with every acknowledged take of every instance, from
// the log alone or from checkpoints taken during the load and the log
// files after them. Under interval, exactly the acknowledged ones (a take
// is acknowledged once its write(2) returned); under always, a take whose
// fsync was cut off may be counted without having been acknowledged.
func TestEmbeddedCrashKeepsAcknowledged(t *testing.T) {
	for _, m := range syncModes {
		for _, checkpoints := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/checkpoints=%v", m.name, checkpoints), func(t *testing.T) {
				testCrashKeepsAcknowledged(t, m.sync, checkpoints)
			})
		}
	}
}

func testCrashKeepsAcknowledged(t *testing.T, mode store.Sync, checkpoints bool) {
	p := filepath.Join(t.TempDir(), "state.db")
	opts := store.EmbeddedOptions{Sync: mode, CheckpointInterval: time.Hour}
	s, err := store.OpenEmbedded(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	acked := make([]atomic.Int64, len(multilingual))
	var total atomic.Int64
	var wg sync.WaitGroup
	const workers = 32
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			for j := 0; ; j++ {
				i := (w + j) % len(multilingual)
				var err error
				var ok bool
				if j%2 == 0 {
					var out limiter.Outcome
					out, err = s.Take(ctx, multilingual[i], unlimited, t0)
					ok = out.Verdict == limiter.Allowed
				} else {
					var out abuse.Outcome
					out, err = s.TakeSend(ctx, abuse.Send{Instance: multilingual[i], Quota: unlimited, SlowLane: unlimited}, t0)
					ok = out.Taken.Verdict == limiter.Allowed
				}
				if err != nil {
					return // crashed
				}
				if !ok {
					t.Errorf("take %q denied", multilingual[i])
					return
				}
				acked[i].Add(1)
				total.Add(1)
			}
		})
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	// With checkpoints, the log is switched and committed repeatedly while
	// decisions append: at least 3 times before the crash.
	var nck atomic.Int64
	ckStop, ckDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ckDone)
		for checkpoints {
			select {
			case <-ckStop:
				return
			default:
			}
			if err := s.Checkpoint(); err != nil {
				t.Errorf("Checkpoint() = %v during the load", err)
				return
			}
			nck.Add(1)
		}
	}()
wait:
	for total.Load() < 2000 || checkpoints && nck.Load() < 3 {
		select {
		case <-stopped:
			break wait // failed
		case <-time.After(time.Millisecond):
		}
	}
	close(ckStop)
	<-ckDone
	s.Crash()
	<-stopped

	s = openOpts(t, p, opts)
	// Every acknowledged take survives. A take may also survive that was
	// never acknowledged, in either mode: its record went out in another
	// goroutine's group write(2) that the crash did not stop, while the
	// take itself saw the crash first (a kill -9 between write(2) and the
	// answer does the same). Each worker has at most one take in flight.
	for i, id := range multilingual {
		got, want := used(t, s, id), acked[i].Load()
		if got < want || got > want+workers {
			t.Errorf("after the crash, used(%q) = %d, want %d (acknowledged)", id, got, want)
		}
	}
}

// lastWAL is the newest log file of the store at path.
func lastWAL(t *testing.T, path string) string {
	t.Helper()
	names, err := store.WALFiles(path)
	if err != nil || len(names) == 0 {
		t.Fatalf("WALFiles(%s) = %v, %v", path, names, err)
	}
	return names[len(names)-1]
}

func appendFile(t *testing.T, name string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func takeN(t *testing.T, s *store.Embedded, instance string, n int) {
	t.Helper()
	for range n {
		if out, err := s.Take(context.Background(), instance, unlimited, t0); err != nil || out.Verdict != limiter.Allowed {
			t.Fatalf("Take(%q) = %v, %v", instance, out, err)
		}
	}
}

// TestEmbeddedLogTornTail: what a crash or power loss leaves at the end of
// the log (half a record, a record with a bad checksum, a zeroed tail) is
// dropped at open; every whole record before it is replayed, and the store
// keeps working.
func TestEmbeddedLogTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(whole []byte) []byte
	}{
		{"half a record", func(whole []byte) []byte { return whole[:len(whole)/2] }},
		{"bad checksum", func(whole []byte) []byte {
			b := bytes.Clone(whole)
			b[len(b)-1] ^= 0xff
			return b
		}},
		{"zeros", func(whole []byte) []byte { return make([]byte, 4096) }},
		{"length past the end", func([]byte) []byte { return []byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			opts := store.EmbeddedOptions{CheckpointInterval: time.Hour}
			s := openOpts(t, p, opts)
			takeN(t, s, "متجر_١", 1)
			before, err := os.ReadFile(lastWAL(t, p))
			if err != nil {
				t.Fatal(err)
			}
			takeN(t, s, "متجر_١", 9)
			s.Crash()
			name := lastWAL(t, p)
			after, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			appendFile(t, name, tc.tail(after[len(before):2*len(before)])) // a copy of the second record, damaged

			s = openOpts(t, p, opts)
			if got := used(t, s, "متجر_١"); got != 10 {
				t.Errorf("after a torn tail (%s), used = %d, want 10", tc.name, got)
			}
			takeN(t, s, "متجر_١", 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openOpts(t, p, opts)
			if got := used(t, s, "متجر_١"); got != 15 {
				t.Errorf("after 5 more and a clean restart, used = %d, want 15", got)
			}
		})
	}
}

// TestEmbeddedCheckpoint: a checkpoint moves the states into the bbolt
// file and deletes the log it covers, so the state survives without any
// log; a covered log file that reappears (its removal cut off by a crash)
// is not replayed over newer state.
func TestEmbeddedCheckpoint(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	opts := store.EmbeddedOptions{CheckpointInterval: time.Hour}
	s := openOpts(t, p, opts)
	takeN(t, s, "दुकान", 5)
	oldName := lastWAL(t, p)
	old, err := os.ReadFile(oldName)
	if err != nil || len(old) == 0 {
		t.Fatalf("log before the checkpoint: %d bytes, %v", len(old), err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldName); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the checkpointed log %s is still there: %v", oldName, err)
	}
	takeN(t, s, "दुकान", 5)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	s.Crash()
	names, err := store.WALFiles(p)
	if err != nil || len(names) != 1 {
		t.Fatalf("log files after two checkpoints = %v, %v; want one", names, err)
	}
	if fi, err := os.Stat(names[0]); err != nil || fi.Size() != 0 {
		t.Fatalf("the current log after a checkpoint and no writes: %v, %v; want empty", fi, err)
	}
	if err := os.Remove(names[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(oldName, old, 0o600); err != nil { // the covered log reappears
		t.Fatal(err)
	}
	s = openOpts(t, p, opts)
	if got := used(t, s, "दुकान"); got != 10 {
		t.Errorf("from the bbolt file with a stale log beside it, used = %d, want 10", got)
	}
}

// TestEmbeddedBackgroundCheckpoint: with a short checkpoint interval the
// log files do not pile up under load.
func TestEmbeddedBackgroundCheckpoint(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	s := openOpts(t, p, store.EmbeddedOptions{CheckpointInterval: time.Millisecond, SyncInterval: time.Millisecond})
	for i := range 200 {
		takeN(t, s, multilingual[i%len(multilingual)], 1)
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond) // let checkpoints run
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if names, err := store.WALFiles(p); err != nil || len(names) != 0 {
		t.Errorf("log files after Close = %v, %v; want none (all checkpointed)", names, err)
	}
	s = openOpts(t, p, store.EmbeddedOptions{})
	var sum int64
	for _, id := range multilingual {
		sum += used(t, s, id)
	}
	if sum != 200 {
		t.Errorf("after Close and open, %d takes counted, want 200", sum)
	}
}

// TestEmbeddedResetMovesLogAside: --store-reset starts empty state: the old
// file's log is moved aside with it, not replayed into the new file.
func TestEmbeddedResetMovesLogAside(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	s := openOpts(t, p, store.EmbeddedOptions{CheckpointInterval: time.Hour})
	takeN(t, s, "shop", 3)
	s.Crash()
	aside, err := store.ResetEmbedded(p, t0)
	if err != nil {
		t.Fatal(err)
	}
	asideLogs, err := store.WALFiles(aside)
	if err != nil || len(asideLogs) != 1 {
		t.Errorf("logs moved aside with %s: %v, %v; want one", aside, asideLogs, err)
	}
	s = openOpts(t, p, store.EmbeddedOptions{})
	if got := used(t, s, "shop"); got != 0 {
		t.Errorf("after a reset, used = %d, want 0 (the old log replayed into the new file)", got)
	}
}

func TestParseSync(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want store.Sync
		ok   bool
	}{{"interval", store.SyncInterval, true}, {"always", store.SyncAlways, true}, {"", 0, false}, {"Always", 0, false}, {"everysec", 0, false}} {
		got, err := store.ParseSync(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSync(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// hangGuard bounds a wait that only a deadlock makes long, so that the
// regression it guards against fails the test instead of hanging it. It
// is not a timing assertion.
const hangGuard = 30 * time.Second

// TestEmbeddedLogWriteOutsideInstanceLock: while the write(2) of an
// instance's record is stalled, the take it belongs to has not answered,
// and the instance's lock is free: Usage reads the consumption and a
// take that the consumption exhausts is denied, without waiting for the
// write. Once the write returns, the take is allowed, and a crash keeps
// it. (Before the log was written outside the instance's lock, Usage
// waited for the stalled write.)
func TestEmbeddedLogWriteOutsideInstanceLock(t *testing.T) {
	for _, m := range syncModes {
		for _, inst := range multilingual {
			t.Run(m.name+"/"+inst, func(t *testing.T) {
				ctx := context.Background()
				p := filepath.Join(t.TempDir(), "state.db")
				opts := store.EmbeddedOptions{Sync: m.sync, CheckpointInterval: time.Hour}
				s, err := store.OpenEmbedded(p, opts)
				if err != nil {
					t.Fatal(err)
				}
				writing, release := make(chan struct{}), make(chan struct{})
				var once sync.Once
				s.SetBeforeWrite(func() {
					once.Do(func() {
						close(writing)
						<-release
					})
				})
				released := false
				defer func() {
					if !released {
						close(release)
					}
				}()
				l := limiter.Limits{Daily: 1, Monthly: 100, Rate: 1e6, Burst: 100}
				type result struct {
					out limiter.Outcome
					err error
				}
				first := make(chan result, 1)
				go func() {
					out, err := s.Take(ctx, inst, l, t0)
					first <- result{out, err}
				}()
				<-writing
				select {
				case r := <-first:
					t.Fatalf("Take(%q) = %v, %v before its record's write(2) returned", inst, r.out, r.err)
				default:
				}
				probe := make(chan result, 1)
				go func() {
					u, err := s.Usage(ctx, inst, l, t0)
					if err != nil || u.DailyUsed != 1 {
						probe <- result{err: fmt.Errorf("Usage(%q) = %+v, %v, want 1 used", inst, u, err)}
						return
					}
					out, err := s.Take(ctx, inst, l, t0)
					probe <- result{out, err}
				}()
				select {
				case r := <-probe:
					if r.err != nil || r.out.Verdict != limiter.DailyExceeded {
						t.Fatalf("second Take(%q) = %v, %v, want denied (daily)", inst, r.out, r.err)
					}
				case <-time.After(hangGuard):
					t.Fatalf("Usage(%q) and a denied Take waited for the stalled log write of the instance's record", inst)
				}
				released = true
				close(release)
				if r := <-first; r.err != nil || r.out.Verdict != limiter.Allowed {
					t.Fatalf("Take(%q) = %v, %v, want allowed", inst, r.out, r.err)
				}
				s.Crash()
				s = openOpts(t, p, opts)
				if got := used(t, s, inst); got != 1 {
					t.Errorf("after the crash, used(%q) = %d, want 1", inst, got)
				}
			})
		}
	}
}

// TestEmbeddedFailedLogWriteIsSticky: a take whose log write fails is not
// acknowledged, and every later take, of any instance, fails too (closed)
// with no new log record; after a restart the log holds what was written
// before the failure, and nothing of the failed takes.
func TestEmbeddedFailedLogWriteIsSticky(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	opts := store.EmbeddedOptions{CheckpointInterval: time.Hour}
	s, err := store.OpenEmbedded(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	takeN(t, s, multilingual[0], 3)
	var once sync.Once
	s.SetBeforeWrite(func() { once.Do(s.CloseLogFile) })
	if out, err := s.Take(ctx, multilingual[0], unlimited, t0); err == nil {
		t.Fatalf("Take(%q) = %v, nil after a failed log write, want an error", multilingual[0], out)
	}
	var wg sync.WaitGroup
	for _, inst := range multilingual {
		wg.Go(func() {
			if out, err := s.Take(ctx, inst, unlimited, t0); err == nil {
				t.Errorf("Take(%q) = %v, nil after a failed log write, want an error", inst, out)
			}
			if out, err := s.TakeSend(ctx, abuse.Send{Instance: inst, Quota: unlimited}, t0); err == nil {
				t.Errorf("TakeSend(%q) = %v, nil after a failed log write, want an error", inst, out)
			}
		})
	}
	wg.Wait()
	s.Crash()
	s = openOpts(t, p, opts)
	for i, inst := range multilingual {
		want := int64(0)
		if i == 0 {
			want = 3
		}
		if got := used(t, s, inst); got != want {
			t.Errorf("after the restart, used(%q) = %d, want %d", inst, got, want)
		}
	}
}
