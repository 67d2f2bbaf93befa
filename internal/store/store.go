// Package store keeps sendguard's mutable state: per-instance quota counters
// and token buckets, suppressed recipients, paused instances and the event
// outbox.
//
// Three implementations share one contract (storetest.Run checks each):
// Memory, in the process and lost on restart; Embedded (bbolt), durable in a
// local file; and Redis, shared by replicas. Every method is safe for
// concurrent use, and Take is atomic per instance: under any concurrency an
// instance with a 100/day plan is allowed exactly 100 sends a day.
package store

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
)

// Suppression is one recipient an instance must not message.
type Suppression struct {
	Instance  string    `json:"instance_id"`
	Phone     string    `json:"phone"` // E.164
	Reason    string    `json:"reason"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrNotFound is returned when a suppression does not exist.
var ErrNotFound = errors.New("not found")

// Memory is the in-memory store. The zero value is not usable; call
// NewMemory.
type Memory struct {
	cal limiter.Calendar

	mu        sync.RWMutex
	instances map[string]*instanceState
	suppress  map[suppressKey]Suppression
	paused    map[string]bool
	outbox    map[string]Event
}

type instanceState struct {
	mu sync.Mutex
	s  limiter.State
}

type suppressKey struct{ instance, phone string }

// NewMemory returns an empty store whose quota days and months are calendar
// periods in cal's time zone.
func NewMemory(cal limiter.Calendar) *Memory {
	return &Memory{
		cal:       cal,
		instances: make(map[string]*instanceState),
		suppress:  make(map[suppressKey]Suppression),
		paused:    make(map[string]bool),
		outbox:    make(map[string]Event),
	}
}

func (m *Memory) instance(id string) *instanceState {
	m.mu.RLock()
	st := m.instances[id]
	m.mu.RUnlock()
	if st != nil {
		return st
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if st = m.instances[id]; st == nil {
		st = &instanceState{}
		m.instances[id] = st
	}
	return st
}

// Take checks the monthly quota, the daily quota and the token bucket of
// instance at now, and consumes one of each only if all three allow it.
func (m *Memory) Take(_ context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error) {
	st := m.instance(instance)
	st.mu.Lock()
	next, out := m.cal.Decide(st.s, l, now)
	st.s = next
	st.mu.Unlock()
	return out, nil
}

// Usage reports instance's use of l at now without consuming anything.
func (m *Memory) Usage(_ context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error) {
	st := m.instance(instance)
	st.mu.Lock()
	s := m.cal.Current(st.s, l, now)
	st.mu.Unlock()
	return limiter.Usage{Day: s.Day, Month: s.Month, DailyUsed: s.DayCount, MonthlyUsed: s.MonthCount, Tokens: s.Tokens}, nil
}

// Suppressed reports whether phone (E.164) is suppressed for instance.
func (m *Memory) Suppressed(_ context.Context, instance, phone string) (bool, error) {
	m.mu.RLock()
	_, ok := m.suppress[suppressKey{instance, phone}]
	m.mu.RUnlock()
	return ok, nil
}

// Suppression returns one suppression, or ErrNotFound.
func (m *Memory) Suppression(_ context.Context, instance, phone string) (Suppression, error) {
	m.mu.RLock()
	s, ok := m.suppress[suppressKey{instance, phone}]
	m.mu.RUnlock()
	if !ok {
		return Suppression{}, ErrNotFound
	}
	return s, nil
}

// PutSuppression adds or replaces a suppression.
func (m *Memory) PutSuppression(_ context.Context, s Suppression) error {
	m.mu.Lock()
	m.suppress[suppressKey{s.Instance, s.Phone}] = s
	m.mu.Unlock()
	return nil
}

// DeleteSuppression removes a suppression, or returns ErrNotFound.
func (m *Memory) DeleteSuppression(_ context.Context, instance, phone string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := suppressKey{instance, phone}
	if _, ok := m.suppress[k]; !ok {
		return ErrNotFound
	}
	delete(m.suppress, k)
	return nil
}

// Suppressions lists instance's suppressions ordered by phone.
func (m *Memory) Suppressions(_ context.Context, instance string) ([]Suppression, error) {
	m.mu.RLock()
	var out []Suppression
	for k, s := range m.suppress {
		if k.instance == instance {
			out = append(out, s)
		}
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Phone < out[j].Phone })
	return out, nil
}

// Paused reports whether instance is paused for review.
func (m *Memory) Paused(_ context.Context, instance string) (bool, error) {
	m.mu.RLock()
	p := m.paused[instance]
	m.mu.RUnlock()
	return p, nil
}

// SetPaused pauses or resumes instance.
func (m *Memory) SetPaused(_ context.Context, instance string, paused bool) error {
	m.mu.Lock()
	if paused {
		m.paused[instance] = true
	} else {
		delete(m.paused, instance)
	}
	m.mu.Unlock()
	return nil
}

// Close releases nothing: the memory store holds no resources.
func (m *Memory) Close() error { return nil }
