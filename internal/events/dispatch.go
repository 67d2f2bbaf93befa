package events

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/tracing"
)

// Receiver is one configured webhook receiver.
type Receiver struct {
	Name   string
	URL    string
	Secret []byte
}

// Outbox is the part of the store the dispatcher uses.
type Outbox interface {
	Append(ctx context.Context, e store.Event) error
	Lease(ctx context.Context, now time.Time, n int, d time.Duration) ([]store.Event, error)
	Ack(ctx context.Context, id string) error
	Release(ctx context.Context, id string, at time.Time) error
}

// ID of one event's delivery to one receiver: the event id, "@", the
// receiver's name. Every receiver gets its own outbox entry, so one
// receiver's outage never holds back another's.
func deliveryID(eventID, receiver string) string { return eventID + "@" + receiver }

func splitDeliveryID(id string) (eventID, receiver string, ok bool) {
	i := strings.LastIndexByte(id, '@')
	if i < 0 {
		return "", "", false
	}
	return id[:i], id[i+1:], true
}

// Enqueue writes one event for every receiver into the outbox. It returns
// once the outbox has it (durably, on a durable store). Enqueueing the same
// eventID again is a no-op.
func Enqueue(ctx context.Context, o Outbox, receivers []Receiver, eventID, kind string, body []byte, at time.Time) error {
	for _, r := range receivers {
		err := o.Append(ctx, store.Event{ID: deliveryID(eventID, r.Name), Kind: kind, Body: body, CreatedAt: at})
		if err != nil {
			return fmt.Errorf("enqueue %s for %s: %w", kind, r.Name, err)
		}
	}
	return nil
}

// Dispatcher delivers the outbox.
type Dispatcher struct {
	Outbox    Outbox
	Receivers []Receiver
	Client    *http.Client  // default: 10s timeout
	RetryFor  time.Duration // give up on an event this long after it was created; default 72h
	BaseDelay time.Duration // first retry delay; default 1s, doubling to MaxDelay
	MaxDelay  time.Duration // default 1h
	Poll      time.Duration // how often to look for due events; default 200ms
	Lease     time.Duration // how long a delivery attempt holds an event; default 30s
	Now       func() time.Time
	Log       *slog.Logger
	// Delivered, Failed and Dropped count outcomes, for metrics; may be nil.
	Delivered, Failed, Dropped func(receiver string)
	// Tracer, when set, traces every delivery attempt (a client span,
	// tracing.SpanEventDeliver, with the event id, kind and receiver, never
	// the body), and Propagator writes its traceparent into the POST so a
	// receiver can continue the trace. Each attempt starts a new trace.
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator

	wake chan struct{}
	once sync.Once
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		if d.Client == nil {
			d.Client = &http.Client{Timeout: 10 * time.Second}
		}
		if d.RetryFor <= 0 {
			d.RetryFor = 72 * time.Hour
		}
		if d.BaseDelay <= 0 {
			d.BaseDelay = time.Second
		}
		if d.MaxDelay <= 0 {
			d.MaxDelay = time.Hour
		}
		if d.Poll <= 0 {
			d.Poll = 200 * time.Millisecond
		}
		if d.Lease <= 0 {
			d.Lease = 30 * time.Second
		}
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Log == nil {
			d.Log = slog.New(slog.DiscardHandler)
		}
		d.wake = make(chan struct{}, 1)
	})
}

// Wake asks the dispatcher to look at the outbox now (after an Enqueue).
func (d *Dispatcher) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.init()
	t := time.NewTicker(d.Poll)
	defer t.Stop()
	for {
		for d.round(ctx) {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// round leases and delivers one batch; it reports whether the batch was
// full (more may be due).
func (d *Dispatcher) round(ctx context.Context) bool {
	const batch = 32
	evs, err := d.Outbox.Lease(ctx, d.Now(), batch, d.Lease)
	if err != nil {
		if ctx.Err() == nil {
			d.Log.Error("event outbox lease failed", "err", err)
		}
		return false
	}
	var wg sync.WaitGroup
	for _, ev := range evs {
		wg.Go(func() { d.deliver(ctx, ev) })
	}
	wg.Wait()
	return len(evs) == batch
}

func (d *Dispatcher) receiver(name string) (Receiver, bool) {
	for _, r := range d.Receivers {
		if r.Name == name {
			return r, true
		}
	}
	return Receiver{}, false
}

func (d *Dispatcher) deliver(ctx context.Context, ev store.Event) {
	eventID, name, ok := splitDeliveryID(ev.ID)
	r, known := d.receiver(name)
	if !ok || !known {
		d.Log.Error("event for an unknown receiver dropped", "id", ev.ID)
		d.count(d.Dropped, name)
		_ = d.Outbox.Ack(ctx, ev.ID)
		return
	}
	err := d.post(ctx, r, eventID, ev)
	now := d.Now()
	if err == nil {
		if err := d.Outbox.Ack(ctx, ev.ID); err != nil {
			d.Log.Error("event ack failed; it will be delivered again", "id", ev.ID, "err", err)
		}
		d.count(d.Delivered, name)
		d.Log.Info("event delivered", "event_id", eventID, "event", ev.Kind, "receiver", name, "attempts", ev.Attempts)
		return
	}
	d.count(d.Failed, name)
	if now.Sub(ev.CreatedAt) >= d.RetryFor {
		d.Log.Error("event dropped after retrying", "event_id", eventID, "event", ev.Kind, "receiver", name, "attempts", ev.Attempts, "err", err)
		d.count(d.Dropped, name)
		_ = d.Outbox.Ack(ctx, ev.ID)
		return
	}
	next := now.Add(d.backoff(ev.Attempts))
	d.Log.Warn("event delivery failed; will retry", "event_id", eventID, "receiver", name, "attempts", ev.Attempts, "retry_at", next, "err", err)
	if err := d.Outbox.Release(ctx, ev.ID, next); err != nil {
		d.Log.Error("event release failed; it is retried when its lease ends", "id", ev.ID, "err", err)
	}
}

func (d *Dispatcher) count(f func(string), receiver string) {
	if f != nil {
		f(receiver)
	}
}

// backoff is full jitter over an exponential ceiling: uniform in
// [0, min(MaxDelay, BaseDelay·2^(attempts-1))], at least 100ms.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	ceil := d.MaxDelay
	if attempts < 40 {
		if c := d.BaseDelay << max(0, attempts-1); c > 0 && c < ceil {
			ceil = c
		}
	}
	return max(100*time.Millisecond, time.Duration(rand.Int64N(int64(ceil)+1)))
}

func (d *Dispatcher) post(ctx context.Context, r Receiver, eventID string, ev store.Event) error {
	now := d.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sendguard")
	req.Header.Set(HeaderEventID, eventID)
	req.Header.Set(HeaderEvent, ev.Kind)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(r.Secret, now, ev.Body))
	var span trace.Span
	if d.Tracer != nil {
		var sctx context.Context
		sctx, span = d.Tracer.Start(ctx, tracing.SpanEventDeliver, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(tracing.AttrEventID.String(eventID), tracing.AttrEvent.String(ev.Kind), tracing.AttrReceiver.String(r.Name),
				attribute.String("http.request.method", http.MethodPost), attribute.Int("sendguard.attempt", ev.Attempts)))
		defer span.End()
		if d.Propagator != nil {
			d.Propagator.Inject(sctx, propagation.HeaderCarrier(req.Header))
		}
		req = req.WithContext(sctx)
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		if span != nil {
			span.SetStatus(otelcodes.Error, "receiver unreachable")
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if span != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode/100 != 2 {
			span.SetStatus(otelcodes.Error, resp.Status)
		}
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}
