// Package inbound records what recipients reply: an opt-out (STOP, in any
// wording the detector knows) suppresses the recipient for that instance
// and emits recipient.opted_out; an opt-in (START) lifts a
// recipient_requested_stop suppression, never a manual block and never one
// recorded after the START was written (a replayed old START), and emits
// recipient.opted_in.
//
// Record is idempotent for one inbound message: the event ids derive from
// the message, so a webhook sender's retry after a crash converges on one
// suppression and one event per receiver. Both are written, durably on a
// durable store, before Record returns.
package inbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/sendguard/sendguard/internal/events"
	"github.com/sendguard/sendguard/internal/store"
)

// Message is one inbound message, as mapped from the webhook's payload.
type Message struct {
	InstanceID string
	From       string // as received; normalised to E.164 here
	Text       string
	Timestamp  time.Time // zero: now
}

// Outcome says what Record did.
type Outcome struct {
	Intent  string // opt_out, opt_in or none
	Matched string // the keyword or phrase that fired
	Phone   string // E.164
	Changed bool   // a suppression was added or lifted
	EventID string // "" when no event
}

// Instance is what the recorder knows of an instance.
type Instance struct{ ID, Name string }

type state interface {
	Suppression(ctx context.Context, instance, phone string) (store.Suppression, error)
	PutSuppression(ctx context.Context, s store.Suppression) error
	DeleteSuppression(ctx context.Context, instance, phone string) error
	events.Outbox
}

// Errors Record reports for input it cannot use.
var (
	ErrUnknownInstance = errors.New("unknown instance")
	ErrBadPhone        = errors.New("from is not a valid phone number")
)

// Recorder records inbound messages.
type Recorder struct {
	Instances map[string]Instance
	State     state
	Phones    interface{ E164(string) (string, bool) }
	// Classify is the intent detector: opt_out, opt_in or none, and what matched.
	Classify  func(text string) (intent, matched string)
	Receivers []events.Receiver
	Wake      func() // tells the dispatcher there is work; may be nil
	Now       func() time.Time
}

// Record classifies m and applies it.
func (r *Recorder) Record(ctx context.Context, m Message) (Outcome, error) {
	inst, ok := r.Instances[m.InstanceID]
	if !ok {
		return Outcome{}, ErrUnknownInstance
	}
	phone, ok := r.Phones.E164(m.From)
	if !ok {
		return Outcome{}, ErrBadPhone
	}
	intent, matched := r.Classify(m.Text)
	out := Outcome{Intent: intent, Matched: matched, Phone: phone}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	at := m.Timestamp
	if at.IsZero() {
		at = now()
	}
	at = at.UTC()

	var kind, reason string
	switch intent {
	case "opt_out":
		kind, reason = events.OptedOut, events.ReasonStop
		cur, err := r.State.Suppression(ctx, inst.ID, phone)
		switch {
		case errors.Is(err, store.ErrNotFound):
			err = r.State.PutSuppression(ctx, store.Suppression{Instance: inst.ID, Phone: phone, Reason: events.ReasonStop, Source: "inbound", CreatedAt: at})
			if err != nil {
				return out, fmt.Errorf("suppress %s: %w", inst.ID, err)
			}
			out.Changed = true
		case err != nil:
			return out, fmt.Errorf("read suppression of %s: %w", inst.ID, err)
		default:
			_ = cur // already suppressed (a retry, or a second STOP): keep it as it is
		}
	case "opt_in":
		kind, reason = events.OptedIn, events.ReasonStart
		cur, err := r.State.Suppression(ctx, inst.ID, phone)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Nothing to lift; still tell the receivers, idempotently.
		case err != nil:
			return out, fmt.Errorf("read suppression of %s: %w", inst.ID, err)
		case cur.Reason != events.ReasonStop:
			// A manual block (or any other reason) outlives the recipient's START.
			return out, nil
		case at.Before(cur.CreatedAt):
			// A START written before the STOP it would lift: a replay of
			// an old signed webhook, or a late delivery. The newer STOP
			// stands, and no event is sent.
			return out, nil
		default:
			if err := r.State.DeleteSuppression(ctx, inst.ID, phone); err != nil && !errors.Is(err, store.ErrNotFound) {
				return out, fmt.Errorf("lift suppression of %s: %w", inst.ID, err)
			}
			out.Changed = true
		}
	default:
		return out, nil
	}

	ev := events.Recipient{Event: kind, InstanceID: inst.ID, InstanceName: inst.Name, From: phone, Reason: reason,
		MessageText: m.Text, Timestamp: at.Format(time.RFC3339)}
	out.EventID = eventID(kind, inst.ID, phone, m.Text, at)
	if err := events.Enqueue(ctx, r.State, r.Receivers, out.EventID, kind, ev.Body(), now()); err != nil {
		return out, err
	}
	if r.Wake != nil {
		r.Wake()
	}
	return out, nil
}

// eventID derives from the inbound message, so the same message recorded
// twice is one event.
func eventID(kind, instance, phone, text string, at time.Time) string {
	h := sha256.New()
	for _, s := range []string{kind, instance, phone, text, at.Format(time.RFC3339Nano)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil))[:32]
}
