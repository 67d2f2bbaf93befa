// Package abuse keeps the short-lived counters that catch bulk sending
// behind transactional labels: one body fanned out to many recipients, one
// recipient hammered, and an instance that keeps violating the rules.
//
// The counters live in the process (one replica's view): they are
// heuristics over minutes, not quotas, and lose nothing that matters on a
// restart. What they trigger that must last (a pause) goes to the durable
// store. A Tracker is safe for concurrent use.
package abuse

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/sendguard/sendguard/internal/optout"
)

// Limits are one plan's abuse limits. Zero values switch a check off.
type Limits struct {
	FanOutWindow   time.Duration // window for distinct recipients of one body
	FanOutThrottle int           // more distinct recipients than this: sending_throttled
	FanOutBlock    int           // more than this: policy_violation
	PairPerMinute  int           // messages to one recipient per minute (Meta's pair rate limit)
}

// Verdict of a check.
type Verdict uint8

// Verdicts.
const (
	OK Verdict = iota
	Throttle
	Block
)

// Tracker counts.
type Tracker struct {
	mu      sync.Mutex
	fanout  map[bodyKey]map[string]time.Time // recipients and when each was last sent this body
	pairs   map[pairKey][]time.Time
	viol    map[string][]time.Time
	ops     int
	maxKeep time.Duration
}

type bodyKey struct {
	instance string
	body     [16]byte
}

type pairKey struct{ instance, phone string }

// New returns an empty Tracker.
func New() *Tracker {
	return &Tracker{fanout: map[bodyKey]map[string]time.Time{}, pairs: map[pairKey][]time.Time{}, viol: map[string][]time.Time{}, maxKeep: time.Hour}
}

// BodyKey is the identity of a message body for fan-out: normalised, with
// digits and capitalised words after the first (names, mostly) masked, so
// "Hi Sara, your code 1234" and "Hi Omar, your code 9876" are one body.
func BodyKey(msg string) [16]byte {
	words := strings.Fields(msg)
	for i, w := range words {
		r := []rune(w)
		if i > 0 && len(r) > 0 && unicode.IsUpper(r[0]) {
			words[i] = "@"
			continue
		}
		var b strings.Builder
		inDigits := false
		for _, r := range w {
			if unicode.IsDigit(r) {
				if !inDigits {
					b.WriteByte('#') // a run of digits is one mask
				}
				inDigits = true
				continue
			}
			inDigits = false
			b.WriteRune(r)
		}
		words[i] = b.String()
	}
	sum := sha256.Sum256([]byte(optout.Normalize(strings.Join(words, " "))))
	var k [16]byte
	copy(k[:], sum[:])
	return k
}

// Check tells whether sending body to phone now stays within l, without
// counting it. retryAfter says when a throttle lifts.
func (t *Tracker) Check(instance string, body [16]byte, phone string, l Limits, now time.Time) (v Verdict, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.check(instance, body, phone, l, now)
}

func (t *Tracker) check(instance string, body [16]byte, phone string, l Limits, now time.Time) (v Verdict, retryAfter time.Duration) {
	if l.PairPerMinute > 0 {
		ts := prune(t.pairs[pairKey{instance, phone}], now.Add(-time.Minute))
		t.pairs[pairKey{instance, phone}] = ts
		if len(ts) >= l.PairPerMinute {
			return Throttle, ts[0].Add(time.Minute).Sub(now)
		}
	}
	if l.FanOutWindow > 0 && (l.FanOutThrottle > 0 || l.FanOutBlock > 0) {
		seen := t.fanout[bodyKey{instance, body}]
		if _, again := seen[phone]; again || len(seen) == 0 {
			return OK, 0
		}
		n, oldest := 0, now
		for p, at := range seen {
			if now.Sub(at) >= l.FanOutWindow {
				delete(seen, p)
				continue
			}
			n++
			oldest = minTime(oldest, at)
		}
		// This recipient would be the n+1st distinct one.
		switch {
		case l.FanOutBlock > 0 && n+1 > l.FanOutBlock:
			return Block, 0
		case l.FanOutThrottle > 0 && n+1 > l.FanOutThrottle:
			return Throttle, oldest.Add(l.FanOutWindow).Sub(now)
		}
	}
	return OK, 0
}

// Reserve checks like Check and, when the verdict is OK, counts the send
// at once, under the same lock, so that concurrent sends of one body cannot
// all pass a check none of them has yet counted. A caller that then refuses
// the send for another reason (its quota, a store error) calls release,
// which takes the count back; release is a no-op when the verdict is not OK.
func (t *Tracker) Reserve(instance string, body [16]byte, phone string, l Limits, now time.Time) (v Verdict, retryAfter time.Duration, release func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, retryAfter = t.check(instance, body, phone, l, now); v != OK {
		return v, retryAfter, func() {}
	}
	prev, had := t.record(instance, body, phone, now)
	return OK, 0, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		k := pairKey{instance, phone}
		ts := t.pairs[k]
		for i := len(ts) - 1; i >= 0; i-- {
			if ts[i].Equal(now) {
				t.pairs[k] = append(ts[:i], ts[i+1:]...)
				break
			}
		}
		if seen := t.fanout[bodyKey{instance, body}]; seen != nil {
			if had {
				seen[phone] = prev
			} else {
				delete(seen, phone)
			}
		}
	}
}

// Record counts one allowed send.
func (t *Tracker) Record(instance string, body [16]byte, phone string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.record(instance, body, phone, now)
}

// record counts one send and returns when phone was last sent body, if it
// was. Called with the lock held.
func (t *Tracker) record(instance string, body [16]byte, phone string, now time.Time) (prev time.Time, had bool) {
	k := pairKey{instance, phone}
	t.pairs[k] = append(t.pairs[k], now)
	bk := bodyKey{instance, body}
	if t.fanout[bk] == nil {
		t.fanout[bk] = map[string]time.Time{}
	}
	prev, had = t.fanout[bk][phone]
	t.fanout[bk][phone] = now
	t.sweep(now)
	return prev, had
}

// Violation counts one violation of instance and returns how many fell in
// the last window, this one included.
func (t *Tracker) Violation(instance string, window time.Duration, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := append(prune(t.viol[instance], now.Add(-window)), now)
	t.viol[instance] = ts
	t.sweep(now)
	return len(ts)
}

// ResetViolations forgets instance's violations (after a pause, so that a
// resumed instance starts afresh).
func (t *Tracker) ResetViolations(instance string) {
	t.mu.Lock()
	delete(t.viol, instance)
	t.mu.Unlock()
}

// sweep drops stale entries now and then, so memory follows the traffic of
// the last hour. Called with the lock held.
func (t *Tracker) sweep(now time.Time) {
	if t.ops++; t.ops%4096 != 0 {
		return
	}
	old := now.Add(-t.maxKeep)
	for k, seen := range t.fanout {
		for p, at := range seen {
			if at.Before(old) {
				delete(seen, p)
			}
		}
		if len(seen) == 0 {
			delete(t.fanout, k)
		}
	}
	for k, ts := range t.pairs {
		if ts = prune(ts, now.Add(-time.Minute)); len(ts) == 0 {
			delete(t.pairs, k)
		} else {
			t.pairs[k] = ts
		}
	}
	for k, ts := range t.viol {
		if ts = prune(ts, old); len(ts) == 0 {
			delete(t.viol, k)
		} else {
			t.viol[k] = ts
		}
	}
}

func prune(ts []time.Time, after time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(after) {
		i++
	}
	return ts[i:]
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
