// Package abuse keeps the short-lived counters that catch bulk sending
// behind transactional labels: one body fanned out to many recipients, one
// recipient hammered, and an instance that keeps violating the rules.
//
// A Tracker keeps them in the process, bounded: the memory and embedded
// stores use one (one process owns an embedded store's file, so its view is
// every send), and `sendguard check` uses a fresh one so that it never
// writes to a store. The Redis store keeps the same counters in Redis,
// shared by every replica, with the same semantics (storetest checks both).
// A Tracker is safe for concurrent use.
package abuse

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/optout"
)

// Limits are one plan's abuse limits. Zero values switch a check off.
type Limits struct {
	FanOutWindow   time.Duration // window for distinct recipients of one body
	FanOutThrottle int           // more distinct recipients than this: sending_throttled
	FanOutBlock    int           // more than this: policy_violation
	PairPerMinute  int           // messages to one recipient per minute (Meta's pair rate limit)
}

// FanOut reports whether the fan-out check is on.
func (l Limits) FanOut() bool {
	return l.FanOutWindow > 0 && (l.FanOutThrottle > 0 || l.FanOutBlock > 0)
}

// Verdict of a check.
type Verdict uint8

// Verdicts.
const (
	OK Verdict = iota
	Throttle
	Block
)

// Send is one send as the abuse counters and the quotas see it.
type Send struct {
	Instance string
	Body     [16]byte // BodyKey of the message
	Phone    string   // E.164
	Abuse    Limits
	Quota    limiter.Limits // the instance's quotas and bucket
	SlowLane limiter.Limits // the slow-lane bucket (risky content); zero Rate: none
	// Decision is the id of the decision this send belongs to. A store
	// that takes an allowed send keeps a receipt under it (instance and
	// id), so that a failed delivery can give back exactly what the send
	// took (the stores' Refund); "" keeps none.
	Decision string
}

// Outcome of TakeSend.
type Outcome struct {
	Verdict    Verdict       // OK unless the abuse counters refused the send
	RetryAfter time.Duration // when a Throttle verdict lifts
	// When Verdict is OK: the limiter's outcome. It is the slow lane's when
	// SlowLane is set (the slow lane refused), else the instance's quotas'.
	Taken    limiter.Outcome
	SlowLane bool
}

// Allowed reports whether every check allowed the send (it was counted).
func (o Outcome) Allowed() bool { return o.Verdict == OK && o.Taken.Verdict == limiter.Allowed }

// Taker is a quota store's Take.
type Taker interface {
	Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error)
}

// SlowLaneID is the limiter id of instance's slow-lane bucket.
func SlowLaneID(instance string) string { return instance + "#slow" }

// Options bound a Tracker. The zero value is the defaults.
type Options struct {
	// MaxRecords caps what is kept exactly, in total across the shards:
	// one per body and per recipient tracked, plus one record per recipient
	// of a body in its window and per send to a recipient in the last
	// minute. Default 100,000: about 20 MiB of heap with the sketch at the
	// worst (every send a new body to a new recipient, four units a send;
	// BenchmarkTrackerMillionPairs). A shard that finds the total over the
	// cap folds its own least recently used entries, so one instance can
	// still use the whole cap; with sends in flight on several shards the
	// total can pass it by what those sends add before their evictions run.
	MaxRecords int
	// SketchWidth is the columns of each of the 4 rows of the overflow
	// sketch (16 bytes a cell); default 32,768: 2 MiB, allocated at New.
	// The shards share the one sketch.
	SketchWidth int
	// Shards is the number of locks the entries are split over, by
	// instance, rounded up to a power of two; default 16.
	Shards int
}

// Tracker counts in the process, in bounded memory.
//
// Each body and each recipient is an entry of an LRU list holding its
// records exactly. When the records pass Options.MaxRecords, the least
// recently used entry goes: dropped when its records are out of their
// window, else folded into a fixed-size count-min sketch with windowed
// counters. The sketch only ever overcounts (collisions add, a folded
// record lives up to twice its window, and a folded recipient sent the body
// again counts as new), so an eviction can make a body or a recipient reach
// its limit early, never late: the limits stay exact for the entries in use
// and fail safe for the rest. Size MaxRecords to the distinct sends of one
// window; beyond it the sketch's false throttles grow with the overflow.
//
// The entries are sharded by instance: every entry a send touches (its body
// and its recipient) and the instance's violations are in the instance's
// shard, under that shard's lock, with that shard's LRU list, so the
// limits stay exact per instance and sends of instances on different
// shards never wait for each other. The sketch has its own lock, taken
// (after the shard's) only once anything was folded into it.
type Tracker struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed // picks the shard; hashes recipients
	max    int64
	kept   atomic.Int64 // records and entries kept, across the shards, as synced
	skMu   sync.Mutex
	sk     sketch
	folded atomic.Bool // anything was folded into sk: until then it is not read
}

// shard is one lock's part of a Tracker: the entries of the instances that
// hash to it.
type shard struct {
	mu      sync.Mutex
	entries map[entryKey]*entry
	head    *entry // most recently used; tail is head.prev (a ring)
	records int
	synced  int // records + len(entries) as last added to Tracker.kept
	peak    int // the most entries since the map was last made
	viol    map[string][]time.Time
	_       [64]byte // keeps neighbouring shards' locks off one cache line
}

const (
	kindFan uint8 = iota + 1
	kindPair
)

type entryKey struct {
	kind     uint8
	instance string
	body     [16]byte // kindFan
	phone    string   // kindPair
}

type stamp struct {
	h  uint64 // the recipient's hash (fan-out); 0 for pairs
	at int64  // unix nanoseconds
}

type entry struct {
	key        entryKey
	skh        uint64 // the key's sketch hash
	window     time.Duration
	stamps     []stamp // oldest first
	prev, next *entry
}

// New returns an empty Tracker.
func New(o Options) *Tracker {
	if o.MaxRecords <= 0 {
		o.MaxRecords = 100_000
	}
	if o.SketchWidth <= 0 {
		o.SketchWidth = 1 << 15
	}
	if o.Shards <= 0 {
		o.Shards = 16
	}
	n := 1
	for n < o.Shards {
		n <<= 1
	}
	t := &Tracker{shards: make([]shard, n), mask: uint64(n - 1), max: int64(o.MaxRecords), seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].entries = map[entryKey]*entry{}
		t.shards[i].viol = map[string][]time.Time{}
	}
	t.sk = sketch{w: uint64(o.SketchWidth), cells: make([]cell, sketchRows*o.SketchWidth), seed: maphash.MakeSeed()}
	return t
}

// shard returns instance's shard.
func (t *Tracker) shard(instance string) *shard {
	return &t.shards[maphash.String(t.seed, instance)&t.mask]
}

// Len returns what counts towards Options.MaxRecords: the entries and
// records kept exactly.
func (t *Tracker) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.records + len(s.entries)
		s.mu.Unlock()
	}
	return n
}

// BodyKey is the identity of a message body for fan-out: normalised, with
// digits and capitalised words after the first (names, mostly) masked, so
// "Hi Sara, your code 1234" and "Hi Omar, your code 9876" are one body.
func BodyKey(msg string) [16]byte {
	// One pass over msg into one buffer (on the stack for a message of up
	// to 512 bytes), the words as strings.Fields splits them.
	var stack [512]byte
	buf := stack[:0]
	word := 0
	for i := 0; i < len(msg); {
		r, n := utf8.DecodeRuneInString(msg[i:])
		if unicode.IsSpace(r) {
			i += n
			continue
		}
		end := i + n
		for end < len(msg) {
			r, n := utf8.DecodeRuneInString(msg[end:])
			if unicode.IsSpace(r) {
				break
			}
			end += n
		}
		w := msg[i:end]
		i = end
		if word > 0 {
			buf = append(buf, ' ')
		}
		if first, _ := utf8.DecodeRuneInString(w); word > 0 && unicode.IsUpper(first) {
			buf = append(buf, '@')
			word++
			continue
		}
		word++
		inDigits := false
		for _, r := range w {
			if unicode.IsDigit(r) {
				if !inDigits {
					buf = append(buf, '#') // a run of digits is one mask
				}
				inDigits = true
				continue
			}
			inDigits = false
			buf = utf8.AppendRune(buf, r)
		}
	}
	sum := sha256.Sum256([]byte(optout.Normalize(string(buf))))
	var k [16]byte
	copy(k[:], sum[:])
	return k
}

// TakeSend checks s against its abuse limits and counts it at once, under
// one lock, so that concurrent sends of one body cannot all pass a check
// none of them has yet counted; then calls take (the store's slow lane and
// quotas); and takes the count back when take refuses or fails. So only
// allowed sends count, and an abuse refusal never calls take.
func (t *Tracker) TakeSend(ctx context.Context, s Send, now time.Time, take QuotaFunc) (Outcome, error) {
	v, retry, undo := t.reserve(&s, now)
	if v != OK {
		return Outcome{Verdict: v, RetryAfter: retry}, nil
	}
	out, err := take(ctx, s, now)
	if err != nil || !out.Allowed() {
		t.Undo(undo)
	}
	return out, err
}

// TakeSendUndo is TakeSend for a store that keeps receipts: take also
// receives undo, which Tracker.Undo takes this send's abuse counts back
// with, so that a refund can do it later. TakeSendUndo still does it when
// take refuses or fails. An Undo is safe to apply long after (a record
// already out of its window or evicted is left as it is) but must be
// applied at most once.
func (t *Tracker) TakeSendUndo(ctx context.Context, s Send, now time.Time, take UndoQuotaFunc) (Outcome, error) {
	v, retry, undo := t.reserve(&s, now)
	if v != OK {
		return Outcome{Verdict: v, RetryAfter: retry}, nil
	}
	out, err := take(ctx, s, now, undo)
	if err != nil || !out.Allowed() {
		t.Undo(undo)
	}
	return out, err
}

// UndoQuotaFunc is a QuotaFunc that also receives the abuse counts' undo.
type UndoQuotaFunc func(ctx context.Context, s Send, now time.Time, undo Undo) (Outcome, error)

// Undo is what Tracker.Undo needs to take one send's abuse counts back:
// plain values (the send's keys and record times), no closure and no
// pointer into the tracker, so a store can keep one in each receipt for
// ReceiptTTL without keeping the send or the tracker's entries alive (a
// closure kept both: about 200 bytes and two more objects a receipt, which
// every garbage collection had to mark). The zero Undo takes nothing back.
type Undo struct {
	instance, phone string
	body            [16]byte
	h               uint64 // the recipient's hash in the fan-out entry
	at, prevAt      int64  // the records' time; the repeat recipient's previous one
	pair, fan       bool   // which records the send added
}

// Undo takes back the records u names, if they are still kept (see
// TakeSendUndo). The zero Undo does nothing.
func (t *Tracker) Undo(u Undo) {
	if !u.pair && !u.fan {
		return
	}
	sh := t.shard(u.instance)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if u.pair {
		t.remove(sh, entryKey{kind: kindPair, instance: u.instance, phone: u.phone}, 0, u.at, 0)
	}
	if u.fan {
		t.remove(sh, entryKey{kind: kindFan, instance: u.instance, body: u.body}, u.h, u.at, u.prevAt)
	}
}

// MaxPackedPhone is the longest phone a PackedUndo holds: an E.164 number
// ("+" and at most 15 digits).
const MaxPackedPhone = 16

// PackedUndo is an Undo without its instance and with the phone in fixed
// bytes: it holds no pointer, so a store that keeps one in each receipt
// (hundreds of thousands under load) keeps them in memory the garbage
// collector does not scan. The zero PackedUndo takes nothing back.
type PackedUndo struct {
	phone      [MaxPackedPhone]byte
	phoneLen   uint8
	pair, fan  bool
	body       [16]byte
	h          uint64
	at, prevAt int64
}

// Pack returns u without its instance (the store keeps it: it is the
// receipt's), and false when u's phone is longer than MaxPackedPhone bytes
// (keep u itself then).
func (u Undo) Pack() (PackedUndo, bool) {
	if len(u.phone) > MaxPackedPhone {
		return PackedUndo{}, false
	}
	p := PackedUndo{phoneLen: uint8(len(u.phone)), pair: u.pair, fan: u.fan, body: u.body, h: u.h, at: u.at, prevAt: u.prevAt}
	copy(p.phone[:], u.phone)
	return p, true
}

// Unpack is the Undo that p was packed from, of the send of instance.
func (p PackedUndo) Unpack(instance string) Undo {
	if !p.pair && !p.fan {
		return Undo{}
	}
	return Undo{instance: instance, phone: string(p.phone[:p.phoneLen]), body: p.body, h: p.h, at: p.at, prevAt: p.prevAt, pair: p.pair, fan: p.fan}
}

// QuotaFunc takes a send's slow lane and quotas, as TakeQuota does.
type QuotaFunc func(ctx context.Context, s Send, now time.Time) (Outcome, error)

// TakeQuota takes s's slow lane, when it has one, then its quotas from q.
// A slow-lane refusal takes no quota. (A quota refusal after the slow lane
// allowed keeps the slow-lane token; stores that can, take both in one
// atomic step instead.)
func TakeQuota(ctx context.Context, q Taker, s Send, now time.Time) (Outcome, error) {
	if s.SlowLane.Rate > 0 {
		out, err := q.Take(ctx, SlowLaneID(s.Instance), s.SlowLane, now)
		if err != nil {
			return Outcome{}, fmt.Errorf("take slow lane of %s: %w", s.Instance, err)
		}
		if out.Verdict != limiter.Allowed {
			return Outcome{Taken: out, SlowLane: true}, nil
		}
	}
	out, err := q.Take(ctx, s.Instance, s.Quota, now)
	if err != nil {
		return Outcome{}, fmt.Errorf("take quota of %s: %w", s.Instance, err)
	}
	return Outcome{Taken: out}, nil
}

// Violation counts one violation of instance and returns how many fell in
// the last window, this one included.
func (t *Tracker) Violation(_ context.Context, instance string, window time.Duration, now time.Time) (int, error) {
	sh := t.shard(instance)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ts := prune(sh.viol[instance], now.Add(-window))
	if len(ts) >= maxViolations {
		ts = ts[1:] // the count saturates; a pause comes far earlier
	}
	ts = append(ts, now)
	sh.viol[instance] = ts
	return len(ts), nil
}

// maxViolations bounds the violations kept per instance. Instances come
// from the config, so the map is bounded by it.
const maxViolations = 1 << 16

// ResetViolations forgets instance's violations (after a pause, so that a
// resumed instance starts afresh).
func (t *Tracker) ResetViolations(_ context.Context, instance string) error {
	sh := t.shard(instance)
	sh.mu.Lock()
	delete(sh.viol, instance)
	sh.mu.Unlock()
	return nil
}

// reserve checks s and, when the verdict is OK, records it; undo takes the
// records back. s is a pointer so that the send is not copied (nothing of
// it is kept: the Undo copies what it needs). Once the sketch is in use
// (the tracker is over its cap, where entries are made again and again),
// the keys' sketch hashes are taken before the lock.
func (t *Tracker) reserve(s *Send, now time.Time) (v Verdict, retry time.Duration, undo Undo) {
	l := s.Abuse
	pairOn, fanOn := l.PairPerMinute > 0, l.FanOut()
	if !pairOn && !fanOn {
		return OK, 0, Undo{}
	}
	var pairKey, fanKey entryKey
	var pairSk, fanSk, h uint64 // sketch hashes: 0 is not taken yet
	folded := t.folded.Load()
	if pairOn {
		pairKey = entryKey{kind: kindPair, instance: s.Instance, phone: s.Phone}
		if folded {
			pairSk = t.sk.hash(pairKey)
		}
	}
	if fanOn {
		fanKey = entryKey{kind: kindFan, instance: s.Instance, body: s.Body}
		if folded {
			fanSk = t.sk.hash(fanKey)
		}
		h = maphash.String(t.seed, s.Phone)
	}
	sh := t.shard(s.Instance)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	defer t.evict(sh, now) // before the unlock
	var pair, fan *entry
	// The sketch's counts of both keys, under one lock of the sketch and
	// under the shard's (only it folds the instance's keys, so none can be
	// folded between this read and the entries').
	var pairN, fanN int
	var pairUntil, fanUntil time.Time
	fanDone := false
	if folded {
		t.skMu.Lock()
		if pairOn {
			pairN, pairUntil = t.sk.estimate(pairSk, now)
		}
		if fanOn {
			fanN, fanUntil = t.sk.estimate(fanSk, now)
		}
		t.skMu.Unlock()
		fanDone = true
	}
	if pairOn {
		pair = t.get(sh, pairKey, pairSk, time.Minute, now)
		if !folded {
			pairN, pairUntil = t.estimate(pair.skh, now)
		}
		n, until := pairN+len(pair.stamps), pairUntil
		if n >= l.PairPerMinute {
			if len(pair.stamps) > 0 {
				until = minTime(until, time.Unix(0, pair.stamps[0].at).Add(time.Minute))
			}
			return Throttle, until.Sub(now), Undo{}
		}
	}
	again := false
	if fanOn {
		fan = t.get(sh, fanKey, fanSk, l.FanOutWindow, now)
		for _, st := range fan.stamps {
			if st.h == h {
				again = true // a recipient already sent this body is not a new one
				break
			}
		}
		if !again {
			if !fanDone {
				fanN, fanUntil = t.estimate(fan.skh, now)
			}
			n, until := fanN+len(fan.stamps), fanUntil // this recipient would be the n+1st distinct one
			switch {
			case l.FanOutBlock > 0 && n+1 > l.FanOutBlock:
				return Block, 0, Undo{}
			case l.FanOutThrottle > 0 && n+1 > l.FanOutThrottle:
				if len(fan.stamps) > 0 {
					until = minTime(until, time.Unix(0, fan.stamps[0].at).Add(l.FanOutWindow))
				}
				return Throttle, until.Sub(now), Undo{}
			}
		}
	}
	at := now.UnixNano()
	var prevAt int64
	if pair != nil {
		t.add(sh, pair, stamp{at: at})
	}
	if fan != nil {
		if again {
			prevAt = bump(fan, h, at)
		} else {
			t.add(sh, fan, stamp{h: h, at: at})
		}
	}
	return OK, 0, Undo{instance: s.Instance, phone: s.Phone, body: s.Body, h: h, at: at, prevAt: prevAt, pair: pair != nil, fan: fan != nil}
}

// estimate returns the sketch's count of the key with sketch hash skh (see
// sketch.estimate); 0 without a lock until anything was folded.
func (t *Tracker) estimate(skh uint64, now time.Time) (int, time.Time) {
	if !t.folded.Load() {
		return 0, time.Time{}
	}
	t.skMu.Lock()
	defer t.skMu.Unlock()
	return t.sk.estimate(skh, now)
}

// get returns k's entry in sh, created if new (with sketch hash skh, or
// k's taken now when skh is 0), with its records out of window dropped, and
// makes it the most recently used. Called with sh's lock held.
func (t *Tracker) get(sh *shard, k entryKey, skh uint64, window time.Duration, now time.Time) *entry {
	e := sh.entries[k]
	if e == nil {
		if skh == 0 {
			skh = t.sk.hash(k)
		}
		e = &entry{key: k, skh: skh, window: window}
		sh.entries[k] = e
		sh.peak = max(sh.peak, len(sh.entries))
	} else {
		sh.unlink(e)
		e.window = max(e.window, window)
		t.prune(sh, e, now)
	}
	sh.pushFront(e)
	return e
}

// prune drops e's records out of its window.
func (t *Tracker) prune(sh *shard, e *entry, now time.Time) {
	cut := now.Add(-e.window).UnixNano()
	if len(e.stamps) == 0 || e.stamps[0].at > cut {
		return // the common case: nothing out of window, no write
	}
	i := 1
	for i < len(e.stamps) && e.stamps[i].at <= cut {
		i++
	}
	e.stamps = append(e.stamps[:0], e.stamps[i:]...)
	sh.records -= i
}

func (t *Tracker) add(sh *shard, e *entry, s stamp) {
	e.stamps = append(e.stamps, s)
	sh.records++
}

// bump moves recipient h of e to at (the newest) and returns its old time.
func bump(e *entry, h uint64, at int64) (prev int64) {
	for i, s := range e.stamps {
		if s.h == h {
			prev = s.at
			copy(e.stamps[i:], e.stamps[i+1:])
			e.stamps[len(e.stamps)-1] = stamp{h: h, at: at}
			return prev
		}
	}
	return 0
}

// remove takes back the record (h, at) of k in sh, putting back prevAt when
// the record replaced an older one (a repeat recipient). A record already
// evicted is not taken back: the sketch keeps overcounting it.
func (t *Tracker) remove(sh *shard, k entryKey, h uint64, at, prevAt int64) {
	e := sh.entries[k]
	if e == nil {
		return
	}
	found := false
	for i := len(e.stamps) - 1; i >= 0; i-- {
		if e.stamps[i].h == h && e.stamps[i].at == at {
			e.stamps = append(e.stamps[:i], e.stamps[i+1:]...)
			sh.records--
			found = true
			break
		}
	}
	if found && prevAt != 0 {
		i := len(e.stamps)
		for i > 0 && e.stamps[i-1].at > prevAt {
			i--
		}
		e.stamps = append(e.stamps, stamp{})
		copy(e.stamps[i+1:], e.stamps[i:])
		e.stamps[i] = stamp{h: h, at: prevAt}
		sh.records++
	}
	t.sync(sh)
}

// sync adds what sh keeps since its last sync to Tracker.kept: one atomic
// add a call, not one a record. Called with sh's lock held.
func (t *Tracker) sync(sh *shard) {
	if n := sh.records + len(sh.entries); n != sh.synced {
		t.kept.Add(int64(n - sh.synced))
		sh.synced = n
	}
}

// evict drops sh's entries out of their window from its LRU end, a few a
// call, and while the tracker (all shards) is over its cap folds sh's live
// ones into the sketch. The entry in use (the head) stays. Called with sh's
// lock held; syncs sh.
func (t *Tracker) evict(sh *shard, now time.Time) {
	// Publish this call's records before reading the others' (atomics are
	// sequentially consistent): of two shards evicting at once, at least
	// one sees what the other added, so the total ends within the cap.
	t.sync(sh)
	defer t.sync(sh)
	base := t.kept.Load() - int64(sh.synced) // the other shards
	for i := 0; sh.head != nil && sh.head.prev != sh.head; i++ {
		tail := sh.head.prev
		t.prune(sh, tail, now)
		over := base+int64(sh.records+len(sh.entries)) > t.max
		switch {
		case len(tail.stamps) > 0 && !over:
			return
		case len(tail.stamps) > 0:
			t.skMu.Lock()
			t.sk.add(tail.skh, len(tail.stamps), tail.window, now)
			t.folded.Store(true) // under skMu: a reader that sees it locks skMu after
			t.skMu.Unlock()
		case i >= 3 && !over:
			return // enough housekeeping for one call
		}
		sh.records -= len(tail.stamps)
		sh.unlink(tail)
		delete(sh.entries, tail.key)
		sh.shrink()
	}
}

// minShrink is the size under which a shard's map is never remade.
const minShrink = 4096

// shrink remakes sh's map when it holds an eighth of the entries it once
// held: a Go map never gives back its buckets, so after a burst of unique
// recipients the buckets of entries long evicted would stay, and every
// garbage collection would scan them (about 4.7 MB after 200,000). Copying
// the eighth left costs each entry evicted since the last remaking a
// seventh of a copy at most. Called with sh's lock held.
func (sh *shard) shrink() {
	if n := len(sh.entries); sh.peak >= minShrink && n <= sh.peak/8 {
		m := make(map[entryKey]*entry, n)
		for k, e := range sh.entries {
			m[k] = e
		}
		sh.entries, sh.peak = m, n
	}
}

func (sh *shard) pushFront(e *entry) {
	if sh.head == nil {
		e.prev, e.next = e, e
	} else {
		e.next, e.prev = sh.head, sh.head.prev
		sh.head.prev.next = e
		sh.head.prev = e
	}
	sh.head = e
}

func (sh *shard) unlink(e *entry) {
	if e.next == e {
		sh.head = nil
	} else {
		e.prev.next, e.next.prev = e.next, e.prev
		if sh.head == e {
			sh.head = e.next
		}
	}
	e.prev, e.next = nil, nil
}

// sketch is a count-min sketch of folded records, with a counter of the
// current and the previous window per cell, so a cell forgets what it
// holds two windows after its last fold.
type sketch struct {
	w     uint64
	cells []cell
	seed  maphash.Seed
}

const sketchRows = 4

type cell struct {
	cur, prev uint32 // records folded in the current, previous epoch
	start     uint32 // unix second the current epoch started
	win       uint32 // epoch length in seconds
}

func (s *sketch) hash(k entryKey) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteByte(k.kind)
	h.WriteString(k.instance)
	h.WriteByte(0)
	h.Write(k.body[:])
	h.WriteString(k.phone)
	return h.Sum64()
}

func (s *sketch) cell(h uint64, row int) *cell {
	h1, h2 := h, h>>32|h<<32|1
	return &s.cells[uint64(row)*s.w+(h1+uint64(row)*h2)%s.w]
}

// add folds n records living window into every row's cell of h. Each is
// taken as sent now, the latest it can have been, and the epoch rounds
// outwards, so it is counted at least as long as it was live.
func (s *sketch) add(h uint64, n int, window time.Duration, now time.Time) {
	t := uint32(now.Unix())
	win := uint32(window/time.Second) + 2
	for row := range sketchRows {
		c := s.cell(h, row)
		c.roll(t)
		if c.cur == 0 && c.prev == 0 {
			c.start, c.win = t, win
		}
		c.win = max(c.win, win)
		c.cur += uint32(min(n, 1<<31))
	}
}

// estimate returns the records of h still counted at now (the least over
// the rows) and when that row's count next drops.
func (s *sketch) estimate(h uint64, now time.Time) (n int, until time.Time) {
	t := uint32(now.Unix())
	best := -1
	for row := range sketchRows {
		c := *s.cell(h, row)
		c.roll(t)
		if m := int(c.cur + c.prev); best < 0 || m < best {
			best = m
			switch {
			case c.prev > 0:
				until = time.Unix(int64(c.start+c.win), 0)
			case c.cur > 0:
				until = time.Unix(int64(c.start+2*c.win), 0)
			}
		}
	}
	return best, until
}

// roll moves c's epochs on to t.
func (c *cell) roll(t uint32) {
	if c.cur == 0 && c.prev == 0 || t < c.start+c.win {
		return
	}
	if t < c.start+2*c.win {
		c.prev = c.cur
	} else {
		c.prev = 0
	}
	c.cur, c.start = 0, t
}

func prune(ts []time.Time, after time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(after) {
		i++
	}
	return ts[i:]
}

func minTime(a, b time.Time) time.Time {
	if b.IsZero() || !a.IsZero() && a.Before(b) {
		return a
	}
	return b
}
