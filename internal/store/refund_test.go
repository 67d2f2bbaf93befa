package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// TestEmbeddedRefundSurvivesCrash: receipts and refunds are in the log
// with the states they go with, so a kill -9 (no checkpoint, no Close)
// loses neither: a send taken before the crash is refunded after it
// exactly once, and a refund made before it is not made again. With a
// checkpoint between (the receipts then in the bbolt file, the later
// refunds in the log) likewise; and a checkpoint drops the receipts that
// expired.
func TestEmbeddedRefundSurvivesCrash(t *testing.T) {
	for _, m := range syncModes {
		for _, checkpoint := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/checkpoint=%v", m.name, checkpoint), func(t *testing.T) {
				ctx := context.Background()
				p := filepath.Join(t.TempDir(), "state.db")
				opts := store.EmbeddedOptions{Sync: m.sync, CheckpointInterval: time.Hour}
				s, err := store.OpenEmbedded(p, opts)
				if err != nil {
					t.Fatal(err)
				}
				const n = 20
				for i := range n {
					inst := multilingual[i%len(multilingual)]
					snd := abuse.Send{Instance: inst, Body: abuse.BodyKey("تم شحن طلبك 📦"), Phone: fmt.Sprintf("+9665012345%02d", i),
						Quota: unlimited, SlowLane: unlimited, Decision: fmt.Sprintf("dec-%d", i)}
					if out, err := s.TakeSend(ctx, snd, t0); err != nil || !out.Allowed() {
						t.Fatalf("TakeSend(%d) = %+v, %v", i, out, err)
					}
				}
				if checkpoint {
					if err := s.Checkpoint(); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < n; i += 2 { // the even ones failed
					if r, err := s.Refund(ctx, multilingual[i%len(multilingual)], fmt.Sprintf("dec-%d", i), t0); err != nil || r != store.Refunded {
						t.Fatalf("Refund(dec-%d) = %v, %v", i, r, err)
					}
				}
				s.Crash()

				s = openOpts(t, p, opts)
				for i := range n {
					inst, id := multilingual[i%len(multilingual)], fmt.Sprintf("dec-%d", i)
					want := store.Refunded
					if i%2 == 0 {
						want = store.RefundDuplicate
					}
					if r, err := s.Refund(ctx, inst, id, t0); err != nil || r != want {
						t.Errorf("after the crash, Refund(%q, %s) = %v, %v; want %v", inst, id, r, err, want)
					}
				}
				for _, inst := range multilingual {
					if got := used(t, s, inst); got != 0 {
						t.Errorf("after the crash and the refunds, used(%q) = %d, want 0", inst, got)
					}
					if got := used(t, s, abuse.SlowLaneID(inst)); got != 0 {
						t.Errorf("after the crash and the refunds, slow lane used(%q) = %d, want 0", inst, got)
					}
				}
			})
		}
	}
}

// TestEmbeddedReceiptsExpireFromTheFile: a receipt past ReceiptTTL is
// dropped from memory at the next take and from the bbolt file at the next
// checkpoint, so the file does not grow with the sends.
func TestEmbeddedReceiptsExpireFromTheFile(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	opts := store.EmbeddedOptions{CheckpointInterval: time.Hour}
	s := openOpts(t, p, opts)
	for i := range 100 {
		snd := abuse.Send{Instance: "shop", Quota: unlimited, Decision: fmt.Sprintf("dec-%d", i)}
		if _, err := s.TakeSend(ctx, snd, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := store.ReceiptsInFile(t, s); got != 100 {
		t.Fatalf("receipts in the file = %d, want 100", got)
	}
	later := t0.Add(store.ReceiptTTL)
	if _, err := s.TakeSend(ctx, abuse.Send{Instance: "shop", Quota: unlimited, Decision: "dec-later"}, later); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := store.ReceiptsInFile(t, s); got != 1 {
		t.Errorf("receipts in the file after they expired = %d, want 1", got)
	}
	if r, err := s.Refund(ctx, "shop", "dec-5", later); err != nil || r != store.RefundUnknown {
		t.Errorf("Refund of an expired receipt = %v, %v; want unknown", r, err)
	}
}

// TestEmbeddedRefundsUnderCheckpoints: many goroutines send (UUID decision
// ids as serve issues them, multilingual instances, bodies and phones,
// abuse limits on) and refund half of their sends, some twice at once,
// while checkpoints run; then a kill -9. Every refund answered refunded
// happened once (the other of a pair is a duplicate), and after the
// restart each send not refunded is refunded exactly once, each one
// refunded is a duplicate, and nothing is used. The receipts' 16-byte
// keys go through the checkpoints' changed lists and back as their text.
func TestEmbeddedRefundsUnderCheckpoints(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	opts := store.EmbeddedOptions{CheckpointInterval: time.Hour}
	s := openOpts(t, p, opts)
	bodies := []string{"تم شحن طلبك رقم ٢٠٤١", "आपका ऑर्डर भेज दिया गया है", "Siparişiniz kargoya verildi 📦", "Café naïve ré\u0301sumé", "İstanbul'a hoş geldiniz 🇹🇷"}
	al := abuse.Limits{FanOutWindow: time.Minute, FanOutBlock: 1 << 30, PairPerMinute: 1 << 30}
	const workers, each = 8, 150
	id := func(w, i int) string { return fmt.Sprintf("019e0f3c-%04x-7abc-8def-%012x", w, i) }
	inst := func(w int) string { return multilingual[w%len(multilingual)] }
	var mu sync.Mutex
	refunded := map[string]bool{} // instance NUL id, refunded before the crash
	stop := make(chan struct{})
	ckDone := make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				ckDone <- nil
				return
			default:
			}
			if err := s.Checkpoint(); err != nil {
				ckDone <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				snd := abuse.Send{Instance: inst(w), Body: abuse.BodyKey(bodies[(w+i)%len(bodies)]), Phone: fmt.Sprintf("+9665%02d%06d", w, i),
					Abuse: al, Quota: unlimited, SlowLane: unlimited, Decision: id(w, i)}
				if i%3 == 0 {
					snd.SlowLane = limiter.Limits{}
				}
				if out, err := s.TakeSend(ctx, snd, t0); err != nil || !out.Allowed() {
					t.Errorf("TakeSend(%s) = %+v, %v", snd.Decision, out, err)
					return
				}
				if i%2 == 1 {
					continue
				}
				times := 1 + i%4/2 // every other refunded one twice at once
				results := make(chan store.RefundResult, times)
				var inner sync.WaitGroup
				for range times {
					inner.Go(func() {
						r, err := s.Refund(ctx, snd.Instance, snd.Decision, t0)
						if err != nil {
							t.Errorf("Refund(%s): %v", snd.Decision, err)
						}
						results <- r
					})
				}
				inner.Wait()
				close(results)
				var n [3]int
				for r := range results {
					n[r]++
				}
				if n[store.Refunded] != 1 || n[store.RefundDuplicate] != times-1 {
					t.Errorf("%d refunds of %s at once: %d refunded, %d duplicate, %d unknown; want 1, %d, 0", times, snd.Decision, n[store.Refunded], n[store.RefundDuplicate], n[store.RefundUnknown], times-1)
				}
				mu.Lock()
				refunded[snd.Instance+"\x00"+snd.Decision] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-ckDone; err != nil {
		t.Fatal(err)
	}
	s.Crash()

	s = openOpts(t, p, opts)
	for w := range workers {
		for i := range each {
			want := store.Refunded
			if refunded[inst(w)+"\x00"+id(w, i)] {
				want = store.RefundDuplicate
			}
			if r, err := s.Refund(ctx, inst(w), id(w, i), t0); err != nil || r != want {
				t.Errorf("after the crash, Refund(%q, %s) = %v, %v; want %v", inst(w), id(w, i), r, err, want)
			}
		}
	}
	for _, in := range multilingual {
		if got := used(t, s, in); got != 0 {
			t.Errorf("after every refund, used(%q) = %d, want 0", in, got)
		}
		if got := used(t, s, abuse.SlowLaneID(in)); got != 0 {
			t.Errorf("after every refund, slow lane used(%q) = %d, want 0", in, got)
		}
	}
}
