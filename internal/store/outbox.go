package store

import (
	"context"
	"sort"
	"time"
)

// Event is one message for the configured receivers (recipient.opted_out,
// instance.paused, …), kept in the outbox until a receiver acknowledged it.
type Event struct {
	ID        string    `json:"id"`   // unique; appending an existing ID is a no-op
	Kind      string    `json:"kind"` // e.g. recipient.opted_out
	Body      []byte    `json:"body"` // the exact bytes to deliver
	CreatedAt time.Time `json:"created_at"`

	// Set by the store.
	Attempts  int       `json:"attempts"`   // leases so far, this one included
	VisibleAt time.Time `json:"visible_at"` // not leased again before this
}

// Append adds e to the outbox, visible at once.
func (m *Memory) Append(_ context.Context, e Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.outbox[e.ID]; ok {
		return nil
	}
	e.Attempts, e.VisibleAt = 0, time.Time{}
	e.Body = append([]byte(nil), e.Body...)
	m.outbox[e.ID] = e
	return nil
}

// Lease returns up to n events visible at now, oldest first, and hides each
// from other leases until now+d. A lease that is neither acknowledged nor
// released expires, and the event is leased again.
func (m *Memory) Lease(_ context.Context, now time.Time, n int, d time.Duration) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.outbox {
		if !e.VisibleAt.After(now) {
			out = append(out, e)
		}
	}
	sortEvents(out)
	if len(out) > n {
		out = out[:n]
	}
	for i := range out {
		out[i].Attempts++
		out[i].VisibleAt = now.Add(d)
		m.outbox[out[i].ID] = out[i]
		out[i].Body = append([]byte(nil), out[i].Body...)
	}
	return out, nil
}

// Ack removes a delivered event. Acknowledging an unknown event is a no-op.
func (m *Memory) Ack(_ context.Context, id string) error {
	m.mu.Lock()
	delete(m.outbox, id)
	m.mu.Unlock()
	return nil
}

// Release makes a leased event visible again at at (a retry after backoff).
func (m *Memory) Release(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.outbox[id]
	if !ok {
		return ErrNotFound
	}
	e.VisibleAt = at
	m.outbox[id] = e
	return nil
}

// Pending counts the events not yet acknowledged.
func (m *Memory) Pending(_ context.Context) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.outbox), nil
}

func sortEvents(es []Event) {
	sort.Slice(es, func(i, j int) bool {
		if !es[i].CreatedAt.Equal(es[j].CreatedAt) {
			return es[i].CreatedAt.Before(es[j].CreatedAt)
		}
		return es[i].ID < es[j].ID
	})
}
