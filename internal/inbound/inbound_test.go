package inbound

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/events"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/optout"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/store"
)

func recorder(t *testing.T) (*Recorder, *store.Memory) {
	phones, err := phone.New(phone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(phones.Close)
	st := store.NewMemory(limiter.Calendar{})
	d := optout.New(optout.DefaultLists())
	return &Recorder{
		Instances: map[string]Instance{"line": {ID: "line", Name: "Support Line"}},
		State:     st, Phones: phones,
		Classify:  func(s string) (string, string) { r := d.Classify(s); return string(r.Intent), r.Matched },
		Receivers: []events.Receiver{{Name: "a"}, {Name: "b"}},
		Now:       func() time.Time { return time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC) },
	}, st
}

func TestStopStartAndManualBlocks(t *testing.T) {
	ctx := context.Background()
	r, st := recorder(t)
	at := time.Date(2026, 5, 8, 9, 0, 0, 0, time.UTC)
	stop := Message{InstanceID: "line", From: "00966 50 123 4567", Text: "STOP", Timestamp: at}
	out, err := r.Record(ctx, stop)
	if err != nil || out.Intent != "opt_out" || !out.Changed || out.Phone != "+966501234567" || out.EventID == "" {
		t.Fatalf("STOP = %+v, %v", out, err)
	}
	sup, err := st.Suppression(ctx, "line", "+966501234567")
	if err != nil || sup.Reason != "recipient_requested_stop" || sup.Source != "inbound" || !sup.CreatedAt.Equal(at) {
		t.Errorf("suppression = %+v, %v", sup, err)
	}
	// The same message again (a webhook retry): one event per receiver still.
	again, err := r.Record(ctx, stop)
	if err != nil || again.Changed || again.EventID != out.EventID {
		t.Errorf("retry = %+v, %v", again, err)
	}
	if n, _ := st.Pending(ctx); n != 2 {
		t.Errorf("outbox has %d deliveries, want one per receiver (2)", n)
	}

	if out, err := r.Record(ctx, Message{InstanceID: "line", From: "+966501234567", Text: "start"}); err != nil || out.Intent != "opt_in" || !out.Changed {
		t.Errorf("START = %+v, %v", out, err)
	}
	if _, err := st.Suppression(ctx, "line", "+966501234567"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("START did not lift the opt-out: %v", err)
	}

	// A manual block outlives START.
	st.PutSuppression(ctx, store.Suppression{Instance: "line", Phone: "+966501112222", Reason: "manual_block"})
	out, err = r.Record(ctx, Message{InstanceID: "line", From: "+966501112222", Text: "START"})
	if err != nil || out.Changed || out.EventID != "" {
		t.Errorf("START on a manual block = %+v, %v", out, err)
	}
	if s, err := st.Suppression(ctx, "line", "+966501112222"); err != nil || s.Reason != "manual_block" {
		t.Errorf("manual block after START = %+v, %v", s, err)
	}

	// Anything else changes nothing.
	if out, err := r.Record(ctx, Message{InstanceID: "line", From: "+966501113333", Text: "Can you cancel my order?"}); err != nil || out.Intent != "none" || out.EventID != "" {
		t.Errorf("question = %+v, %v", out, err)
	}
	if _, err := r.Record(ctx, Message{InstanceID: "nope", From: "+966501113333", Text: "STOP"}); !errors.Is(err, ErrUnknownInstance) {
		t.Errorf("unknown instance: %v", err)
	}
	if _, err := r.Record(ctx, Message{InstanceID: "line", From: "12", Text: "STOP"}); !errors.Is(err, ErrBadPhone) {
		t.Errorf("bad phone: %v", err)
	}
}

// TestStaleStartDoesNotLiftNewerStop: a START written before the STOP now
// in force (a captured signed webhook replayed, or a late delivery) lifts
// nothing and sends no event; a START written after it lifts it.
func TestStaleStartDoesNotLiftNewerStop(t *testing.T) {
	ctx := context.Background()
	r, st := recorder(t)
	t0 := time.Date(2026, 5, 8, 8, 0, 0, 0, time.UTC)
	from := "+966501234567"
	for _, m := range []Message{
		{InstanceID: "line", From: from, Text: "STOP", Timestamp: t0},
		{InstanceID: "line", From: from, Text: "START", Timestamp: t0.Add(time.Minute)},
		{InstanceID: "line", From: from, Text: "ايقاف", Timestamp: t0.Add(2 * time.Minute)},
	} {
		if _, err := r.Record(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	pending, _ := st.Pending(ctx)
	replay := Message{InstanceID: "line", From: from, Text: "START", Timestamp: t0.Add(time.Minute)}
	out, err := r.Record(ctx, replay)
	if err != nil || out.Intent != "opt_in" || out.Changed || out.EventID != "" {
		t.Errorf("replayed START = %+v, %v, want opt_in, nothing changed, no event", out, err)
	}
	if s, err := st.Suppression(ctx, "line", from); err != nil || s.Reason != events.ReasonStop {
		t.Errorf("suppression after the replayed START = %+v, %v, want the newer STOP", s, err)
	}
	if n, _ := st.Pending(ctx); n != pending {
		t.Errorf("the replayed START queued %d deliveries", n-pending)
	}
	later := Message{InstanceID: "line", From: from, Text: "start", Timestamp: t0.Add(3 * time.Minute)}
	if out, err := r.Record(ctx, later); err != nil || !out.Changed {
		t.Errorf("START after the STOP = %+v, %v, want it lifted", out, err)
	}
	if _, err := st.Suppression(ctx, "line", from); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("suppression after a newer START: %v, want none", err)
	}
}

// TestRecordConcurrent: 32 goroutines record STOPs in Arabic, Hindi and
// English with emoji for 64 recipients, then, all at once, replays of
// STARTs written before each STOP and, for every other recipient, a START
// written after it. Only the later STARTs lift: the replays leave their
// recipients suppressed whatever the order the goroutines ran in.
func TestRecordConcurrent(t *testing.T) {
	ctx := context.Background()
	r, st := recorder(t)
	t0 := time.Date(2026, 5, 8, 8, 0, 0, 0, time.UTC)
	stops := []string{"ايقاف", "बंद करो", "STOP 🛑", "stop ✋"}
	starts := []string{"START", "ابدأ", "start 👍"}
	const n = 64
	phone := func(i int) string { return fmt.Sprintf("+96650123%04d", i) }
	run := func(msgs []Message) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(msgs))
		work := make(chan Message)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for m := range work {
					if _, err := r.Record(ctx, m); err != nil {
						errs <- err
					}
				}
			}()
		}
		for _, m := range msgs {
			work <- m
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	var msgs []Message
	for i := range n {
		msgs = append(msgs, Message{InstanceID: "line", From: phone(i), Text: stops[i%len(stops)], Timestamp: t0})
	}
	run(msgs)
	msgs = msgs[:0]
	for i := range n {
		for k := range 3 { // the same old START replayed three times
			msgs = append(msgs, Message{InstanceID: "line", From: phone(i), Text: starts[(i+k)%len(starts)], Timestamp: t0.Add(-time.Minute)})
		}
		if i%2 == 0 {
			msgs = append(msgs, Message{InstanceID: "line", From: phone(i), Text: starts[i%len(starts)], Timestamp: t0.Add(time.Minute)})
		}
	}
	run(msgs)
	for i := range n {
		_, err := st.Suppression(ctx, "line", phone(i))
		switch {
		case i%2 == 0 && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: STOP then a later START, suppression lookup = %v, want none", phone(i), err)
		case i%2 == 1 && err != nil:
			t.Errorf("%s: STOP then only replayed older STARTs, suppression lookup = %v, want the STOP kept", phone(i), err)
		}
	}
}
