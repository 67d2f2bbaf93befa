// Package store keeps sendguard's mutable state: per-instance quota counters
// and token buckets, suppressed recipients, paused instances and the event
// outbox.
//
// Three implementations share one contract (storetest.Run checks each):
// Memory, in the process and lost on restart; Embedded (bbolt), durable in a
// local file; and Redis, shared by replicas. Every method is safe for
// concurrent use, and Take is atomic per instance: under any concurrency an
// instance with a 100/day plan is allowed exactly 100 sends a day.
//
// The stores also keep the abuse counters (fan-out of one body, sends per
// recipient per minute, violations; see package abuse): TakeSend checks and
// counts a send's abuse limits and takes its slow lane and quotas as one
// atomic step, and counts the send only when all of them allow it. Memory
// and Embedded keep the counters in a bounded abuse.Tracker in the process
// (exact there: one process owns an embedded file), not on disk: they are
// counts over minutes, and a restart forgets them. Redis keeps them in
// Redis, exact across replicas.
package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
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

// ErrInvalid is returned by AddSuppressions when a suppression in the
// batch has an empty instance, an instance with a NUL byte, or a phone that
// is not in E.164 form ("+" and 7 to 15 digits, the first not 0). The
// whole batch is then refused before anything is written.
var ErrInvalid = errors.New("invalid suppression")

// AddChunk is how many suppressions AddSuppressions writes per
// transaction (embedded) or per script call (Redis).
const AddChunk = 20000

// validBatch checks every suppression of a batch, naming the first bad one
// by its index.
func validBatch(sups []Suppression) error {
	for i, s := range sups {
		if s.Instance == "" || strings.IndexByte(s.Instance, 0) >= 0 || !isE164(s.Phone) {
			return fmt.Errorf("suppression %d (instance %q, phone %q): %w", i, s.Instance, s.Phone, ErrInvalid)
		}
	}
	return nil
}

// isE164 reports whether p is "+" followed by 7 to 15 digits, the first
// not 0: the form every path (admin API, inbound, seeds, import) stores.
func isE164(p string) bool {
	if len(p) < 8 || len(p) > 16 || p[0] != '+' || p[1] == '0' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// Memory is the in-memory store. The zero value is not usable; call
// NewMemory.
type Memory struct {
	cal   limiter.Calendar
	abuse *abuse.Tracker

	mu        sync.RWMutex
	instances map[string]*instanceState
	suppress  map[suppressKey]Suppression
	paused    map[string]bool
	outbox    map[string]Event
}

type instanceState struct {
	mu sync.Mutex
	s  limiter.State
	rc receipts // the instance's (never a slow lane's)
}

type suppressKey struct{ instance, phone string }

// NewMemory returns an empty store whose quota days and months are calendar
// periods in cal's time zone.
func NewMemory(cal limiter.Calendar) *Memory {
	return &Memory{
		cal:       cal,
		abuse:     abuse.New(abuse.Options{}),
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

// TakeSend checks and counts s's abuse limits, then takes its slow lane
// and quotas: the slow lane and the quotas are consumed together or not at
// all, and the abuse counts are taken back unless both allowed.
func (m *Memory) TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	return m.abuse.TakeSendUndo(ctx, s, now, m.takeQuota)
}

func (m *Memory) takeQuota(_ context.Context, s abuse.Send, now time.Time, undo abuse.Undo) (abuse.Outcome, error) {
	st := m.instance(s.Instance)
	st.mu.Lock() // always the instance before its slow lane
	defer st.mu.Unlock()
	var slow *instanceState
	var slowNext limiter.State
	if s.SlowLane.Rate > 0 {
		slow = m.instance(abuse.SlowLaneID(s.Instance))
		slow.mu.Lock()
		defer slow.mu.Unlock()
		var out limiter.Outcome
		if slowNext, out = m.cal.Decide(slow.s, s.SlowLane, now); out.Verdict != limiter.Allowed {
			return abuse.Outcome{Taken: out, SlowLane: true}, nil
		}
	}
	next, out := m.cal.Decide(st.s, s.Quota, now)
	if out.Verdict == limiter.Allowed {
		st.s = next
		if slow != nil {
			slow.s = slowNext
		}
		if s.Decision != "" {
			st.rc.put(s.Decision, newReceipt(next, s.Quota.Burst, slow != nil, s.SlowLane.Burst, now), undo, now.UnixNano())
		}
	}
	return abuse.Outcome{Taken: out}, nil
}

// Refund gives back what the allowed send of decision id took from
// instance (its quota units, its tokens and its abuse counts), when the
// instance holds a receipt for it that has not been refunded; see
// RefundResult. It is atomic under the instance's lock.
func (m *Memory) Refund(_ context.Context, instance, id string, now time.Time) (RefundResult, error) {
	m.mu.RLock()
	st := m.instances[instance]
	m.mu.RUnlock()
	if st == nil {
		return RefundUnknown, nil
	}
	st.mu.Lock()
	r, undo, res, ok := st.rc.refundable(instance, id, now.UnixNano())
	if !ok {
		st.mu.Unlock()
		return res, nil
	}
	if r.slow {
		slow := m.instance(abuse.SlowLaneID(instance))
		slow.mu.Lock()
		slow.s = giveBack(slow.s, r.day, r.month, r.slowBurst)
		slow.mu.Unlock()
	}
	st.s = giveBack(st.s, r.day, r.month, r.burst)
	st.rc.refunded(id)
	st.mu.Unlock()
	m.abuse.Undo(undo)
	return Refunded, nil
}

// Violation counts one violation of instance and returns how many fell in
// the last window, this one included.
func (m *Memory) Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error) {
	return m.abuse.Violation(ctx, instance, window, now)
}

// ResetViolations forgets instance's violations.
func (m *Memory) ResetViolations(ctx context.Context, instance string) error {
	return m.abuse.ResetViolations(ctx, instance)
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

// AddSuppressions adds every suppression of sups that is not in the store
// yet and keeps the ones that are as they are (reason, source and time
// included); within sups the first of a repeated (instance, phone) wins. It
// returns how many it added, so a repeated call adds 0. A batch with an
// invalid suppression is refused with ErrInvalid and changes nothing.
func (m *Memory) AddSuppressions(_ context.Context, sups []Suppression) (int, error) {
	if err := validBatch(sups); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	added := 0
	for _, s := range sups {
		k := suppressKey{s.Instance, s.Phone}
		if _, ok := m.suppress[k]; !ok {
			m.suppress[k] = s
			added++
		}
	}
	return added, nil
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

// Suppressions lists all of instance's suppressions ordered by phone, as
// one page (the admin API pages with SuppressionPage).
func (m *Memory) Suppressions(ctx context.Context, instance string) ([]Suppression, error) {
	list, _, err := m.SuppressionPage(ctx, instance, "", math.MaxInt)
	return list, err
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
