package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/store"
)

// scriptDigits renders the ASCII digits of s in the decimal digits that
// start at zero (U+0660 Arabic-Indic, U+0966 Devanagari, '0' ASCII).
func scriptDigits(s string, zero rune) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			r = zero + (r - '0')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// supPhone is the n-th phone of a writer, as a user would type it (in
// Arabic-Indic, Devanagari or ASCII digits, with spaces), normalised to
// E.164 as a send's recipient is.
func supPhone(t *testing.T, norm *phone.Normalizer, n int) string {
	t.Helper()
	var raw string
	switch n % 3 {
	case 0:
		raw = scriptDigits(fmt.Sprintf("+96650%07d", n), '\u0660')
	case 1:
		raw = scriptDigits(fmt.Sprintf("+9198%08d", n), '\u0966')
	default:
		d := fmt.Sprintf("%07d", n)
		raw = "+90 532 " + d[:3] + " " + d[3:5] + " " + d[5:]
	}
	e164, ok := norm.E164(raw)
	if !ok {
		t.Fatalf("E164(%q) = not valid", raw)
	}
	return e164
}

type supRec struct{ instance, phone string }

// TestEmbeddedSuppressedIndex: Suppressed answers from the in-memory index
// exactly while writers (PutSuppression, AddSuppressions, a put then a
// delete) work on instances in several scripts and 16 goroutines ask:
// whatever a writer has returned from reads true, a deletion reads false,
// a number nobody suppressed reads false, and a suppression already in
// the file (Suppression finds it) is never answered false (the index is
// written before the commit). A recipient who is not suppressed costs no
// allocation (no bbolt transaction). It all survives a reopen and a
// crash, and after Close, Suppressed and PutSuppression fail.
func TestEmbeddedSuppressedIndex(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	s := openEmbedded(t, p)
	norm, err := phone.New(phone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer norm.Close()
	instances := []string{"shop-1", "متجر", "दुकान", "İstanbul", "🛍️", "cafe\u0301"}
	const rounds = 45
	// Phones: kept ones are n in [0, 3*rounds), deleted ones [1000, ...),
	// never written ones [5000, ...).
	kept := func(inst, n int) supRec { return supRec{instances[inst], supPhone(t, norm, n)} }
	deleted := func(inst, n int) supRec { return supRec{instances[inst], supPhone(t, norm, 1000+n)} }
	never := func(inst, n int) supRec { return supRec{instances[inst], supPhone(t, norm, 5000+n)} }

	nobody := never(1, 1)
	if n := testing.AllocsPerRun(100, func() { _, _ = s.Suppressed(ctx, nobody.instance, nobody.phone) }); n != 0 {
		t.Errorf("Suppressed of a recipient not suppressed = %.0f allocations, want 0", n)
	}

	var ackMu sync.RWMutex
	var acked []supRec // returned from: must read true from now on
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for g := range 16 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				ackMu.RLock()
				var r supRec
				if len(acked) > 0 {
					r = acked[rng.IntN(len(acked))]
				}
				ackMu.RUnlock()
				if r.instance != "" {
					if got, err := s.Suppressed(ctx, r.instance, r.phone); !got || err != nil {
						t.Errorf("Suppressed(%q, %q) = %v, %v after its write returned, want true", r.instance, r.phone, got, err)
						return
					}
				}
				// In the file, so in the index: the index goes first.
				r = kept(rng.IntN(len(instances)), rng.IntN(3*rounds))
				if _, err := s.Suppression(ctx, r.instance, r.phone); err == nil {
					if got, err := s.Suppressed(ctx, r.instance, r.phone); !got || err != nil {
						t.Errorf("Suppressed(%q, %q) = %v, %v with the suppression in the file, want true", r.instance, r.phone, got, err)
						return
					}
				}
				r = never(rng.IntN(len(instances)), rng.IntN(100))
				if got, err := s.Suppressed(ctx, r.instance, r.phone); got || err != nil {
					t.Errorf("Suppressed(%q, %q) = %v, %v, want false (never suppressed)", r.instance, r.phone, got, err)
					return
				}
			}
		})
	}
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var writers sync.WaitGroup
	for w := range instances {
		writers.Go(func() {
			ack := func(rs ...supRec) {
				for _, r := range rs {
					if got, err := s.Suppressed(ctx, r.instance, r.phone); !got || err != nil {
						t.Errorf("Suppressed(%q, %q) = %v, %v right after its write, want true", r.instance, r.phone, got, err)
					}
				}
				ackMu.Lock()
				acked = append(acked, rs...)
				ackMu.Unlock()
			}
			for n := range rounds {
				switch n % 3 {
				case 0:
					r := kept(w, 3*n)
					if err := s.PutSuppression(ctx, store.Suppression{Instance: r.instance, Phone: r.phone, Reason: "manual_block", Source: "console", CreatedAt: at}); err != nil {
						t.Errorf("PutSuppression(%q, %q): %v", r.instance, r.phone, err)
						return
					}
					ack(r)
				case 1:
					rs := []supRec{kept(w, 3*n), kept(w, 3*n+1), kept(w, 3*n+2), kept(w, 3*n)}
					var batch []store.Suppression
					for _, r := range rs {
						batch = append(batch, store.Suppression{Instance: r.instance, Phone: r.phone, Reason: "import", Source: "import", CreatedAt: at})
					}
					if got, err := s.AddSuppressions(ctx, batch); got != 3 || err != nil {
						t.Errorf("AddSuppressions(%v) = %d, %v, want 3", rs, got, err)
						return
					}
					ack(rs[:3]...)
				default:
					r := deleted(w, n)
					if err := s.PutSuppression(ctx, store.Suppression{Instance: r.instance, Phone: r.phone, Reason: "recipient_requested_stop", Source: "inbound", CreatedAt: at}); err != nil {
						t.Errorf("PutSuppression(%q, %q): %v", r.instance, r.phone, err)
						return
					}
					if got, err := s.Suppressed(ctx, r.instance, r.phone); !got || err != nil {
						t.Errorf("Suppressed(%q, %q) = %v, %v right after its write, want true", r.instance, r.phone, got, err)
					}
					if err := s.DeleteSuppression(ctx, r.instance, r.phone); err != nil {
						t.Errorf("DeleteSuppression(%q, %q): %v", r.instance, r.phone, err)
						return
					}
					if got, err := s.Suppressed(ctx, r.instance, r.phone); got || err != nil {
						t.Errorf("Suppressed(%q, %q) = %v, %v after its deletion, want false", r.instance, r.phone, got, err)
					}
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()

	check := func(when string, s *store.Embedded) {
		t.Helper()
		for w := range instances {
			for n := range 3 * rounds {
				// Round r wrote 3r (r%3 == 0) or 3r, 3r+1, 3r+2 (r%3 == 1).
				if r := kept(w, n); n%9 == 0 || n%9 >= 3 && n%9 <= 5 {
					if got, err := s.Suppressed(ctx, r.instance, r.phone); !got || err != nil {
						t.Errorf("%s: Suppressed(%q, %q) = %v, %v, want true", when, r.instance, r.phone, got, err)
					}
				}
			}
			for n := range rounds {
				for _, r := range []supRec{deleted(w, n), never(w, n)} {
					if got, err := s.Suppressed(ctx, r.instance, r.phone); got || err != nil {
						t.Errorf("%s: Suppressed(%q, %q) = %v, %v, want false", when, r.instance, r.phone, got, err)
					}
				}
			}
		}
	}
	check("before reopen", s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Suppressed(ctx, instances[0], never(0, 1).phone); err == nil {
		t.Errorf("Suppressed after Close = %v, nil, want an error", got)
	}
	if got, err := s.Suppressed(ctx, instances[0], kept(0, 0).phone); err == nil {
		t.Errorf("Suppressed of a suppression after Close = %v, nil, want an error", got)
	}
	late := never(2, 99)
	if err := s.PutSuppression(ctx, store.Suppression{Instance: late.instance, Phone: late.phone}); err == nil {
		t.Error("PutSuppression after Close = nil, want an error")
	}
	if _, err := s.AddSuppressions(ctx, []store.Suppression{{Instance: late.instance, Phone: late.phone}}); err == nil {
		t.Error("AddSuppressions after Close = nil, want an error")
	}

	s = openEmbedded(t, p)
	check("after reopen", s)
	// A kill -9 right after the write returned keeps it.
	crash := never(3, 98)
	if err := s.PutSuppression(ctx, store.Suppression{Instance: crash.instance, Phone: crash.phone, Reason: "manual_block"}); err != nil {
		t.Fatal(err)
	}
	s.Crash()
	if got, err := s.Suppressed(ctx, crash.instance, crash.phone); err == nil {
		t.Errorf("Suppressed after a crash = %v, nil, want an error", got)
	}
	s = openEmbedded(t, p)
	defer s.Close()
	check("after a crash", s)
	if got, err := s.Suppressed(ctx, crash.instance, crash.phone); !got || err != nil {
		t.Errorf("after a crash: Suppressed(%q, %q) = %v, %v, want true", crash.instance, crash.phone, got, err)
	}
	if err := s.DeleteSuppression(ctx, late.instance, late.phone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSuppression of the write after Close = %v, want ErrNotFound", err)
	}
}
