package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	guuid "github.com/google/uuid"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
)

// Refunds: a send that was allowed (it took a quota unit, a token, and its
// abuse counts) and whose delivery then failed gives all of it back. Every
// store keeps, atomically with the take, a receipt under the instance and
// the decision id: the calendar day and month the send was counted in,
// whether it took a slow-lane token, the buckets' bursts and what it
// added to the abuse counters. Refund reads the receipt, gives back what
// it says, and marks it refunded, all in one atomic step, so a refund is
// idempotent per decision id: a second one gives back nothing.
//
// A receipt is kept for ReceiptTTL after the take: a refund comes within
// Envoy's route and ext_proc timeouts (seconds), and one later finds no
// receipt (RefundUnknown). The in-process stores also keep at most
// MaxReceipts per instance (the oldest go first), so memory stays bounded
// under any load; Redis expires each receipt key after ReceiptTTL.

// ReceiptTTL is how long a receipt (and the refunded mark that makes a
// repeated refund a duplicate) is kept after the take.
const ReceiptTTL = 2 * time.Minute

// MaxReceipts bounds the receipts the memory and embedded stores keep per
// instance: at ReceiptTTL, 833 allowed sends a second per instance before
// the oldest receipts go early (their refunds then find none: unknown).
// A receipt takes 250-290 bytes of heap with its decision id and its
// abuse undo, as a value in a map (TestReceiptsBounded,
// TestReceiptHeapWithAbuse), so about 29 MB per instance at the bound,
// none of which the garbage collector scans (TestReceiptsNotScanned).
const MaxReceipts = 100_000

// RefundResult is what a Refund did.
type RefundResult uint8

// Refund results.
const (
	// RefundUnknown: no receipt for this instance and decision id: an id
	// that was never allowed, another instance's, a forged or an expired
	// one. Nothing changed.
	RefundUnknown RefundResult = iota
	// Refunded: what the decision took was given back.
	Refunded
	// RefundDuplicate: the decision was refunded already; nothing changed.
	RefundDuplicate
)

func (r RefundResult) String() string {
	switch r {
	case Refunded:
		return "refunded"
	case RefundDuplicate:
		return "duplicate"
	}
	return "unknown"
}

// receipt is what one allowed send took: what the log and the checkpoint
// keep of it.
type receipt struct {
	day, month       int32 // the calendar day and month it was counted in
	slow             bool  // it took a slow-lane token (and slow-lane day/month counts)
	done             bool  // refunded
	burst, slowBurst int64 // the buckets' capacities when it was taken
	expires          int64 // unix nanoseconds
}

// uuidReceipt is a receipt kept under a uuid with its abuse undo (in the
// process only): no pointer.
type uuidReceipt struct {
	receipt
	undo abuse.PackedUndo
}

// textReceipt is a receipt kept under its id's text, with its abuse undo.
type textReceipt struct {
	receipt
	undo abuse.Undo
}

func (r uuidReceipt) expiry() int64 { return r.expires }
func (r textReceipt) expiry() int64 { return r.expires }

// uuid is a decision id that is the canonical text of a UUID (36 bytes:
// lower-case hex digits, dashes after the 8th, 12th, 16th and 20th), as
// sendguard issues them (decision.NewID), kept as its 16 bytes.
type uuid [16]byte

// parseUUID returns the uuid whose canonical text is s; false when s is
// not one (upper-case, braces, no dashes: another id, which this store
// keeps as text). uuid.Parse reads the 36-byte form with digits of either
// case; a canonical text has lower-case ones only.
func parseUUID(s string) (uuid, bool) {
	if len(s) != 36 || strings.ContainsAny(s, "ABCDEF") {
		return uuid{}, false
	}
	u, err := guuid.Parse(s)
	return uuid(u), err == nil
}

// appendText appends u's canonical text: the id it was parsed from.
func (u uuid) appendText(b []byte) []byte {
	const hexDigits = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// receipts are one instance's, guarded by its instanceState's mu.
//
// A decision id sendguard issued (a uuid) keys its receipt by its 16
// bytes, and the receipt holds its abuse undo packed: the map, its queue
// and the changed list hold no pointer, so the garbage collector does not
// scan them (two minutes of sends: the largest part of the live heap
// under load; TestReceiptsNotScanned). Any other id (one that is not a
// uuid's canonical text, or a send whose phone does not fit a
// PackedUndo) keeps its receipt under its text as before. A refund looks
// an id up as it is spelt: a uuid written otherwise (upper case, say)
// finds no receipt kept under its canonical text, and the reverse.
type receipts struct {
	uuids receiptSet[uuid, uuidReceipt]
	texts receiptSet[string, textReceipt]
	// track: note the ids put, refunded or dropped since the embedded
	// store's last checkpoint (the embedded store's only).
	track bool
}

// receiptSet is receipts under one kind of key.
type receiptSet[K comparable, V interface{ expiry() int64 }] struct {
	m       map[K]V
	q       []queued[K] // by expiry (takes come in time order), for expiry and the bound
	changed []K         // see receipts.track
}

type queued[K comparable] struct {
	id      K
	expires int64
}

func (s *receiptSet[K, V]) put(id K, v V, track bool) {
	if s.m == nil {
		s.m = make(map[K]V)
	}
	s.m[id] = v
	s.q = append(s.q, queued[K]{id, v.expiry()})
	s.touch(id, track)
}

// pop drops the oldest queued receipt, unless a newer one took its id.
func (s *receiptSet[K, V]) pop(track bool) {
	old := s.q[0]
	s.q[0] = queued[K]{}
	s.q = s.q[1:]
	if cur, ok := s.m[old.id]; ok && cur.expiry() == old.expires {
		delete(s.m, old.id)
		s.touch(old.id, track)
	}
}

func (s *receiptSet[K, V]) touch(id K, track bool) {
	if track {
		s.changed = append(s.changed, id)
	}
}

// requeue rebuilds the expiry queue from the map (after a recovery).
func (s *receiptSet[K, V]) requeue() {
	s.q = s.q[:0]
	for id, r := range s.m {
		s.q = append(s.q, queued[K]{id, r.expiry()})
	}
	slices.SortFunc(s.q, func(a, b queued[K]) int { return cmp.Compare(a.expires, b.expires) })
}

// len is how many receipts are kept.
func (rs *receipts) len() int { return len(rs.uuids.m) + len(rs.texts.m) }

// put keeps r, and the abuse undo u, under id, first dropping what expired
// at now and, at the bound, the oldest.
func (rs *receipts) put(id string, r receipt, u abuse.Undo, now int64) {
	for {
		qu, qt := rs.uuids.q, rs.texts.q
		full := rs.len() >= MaxReceipts
		if len(qu) > 0 && (len(qt) == 0 || qu[0].expires <= qt[0].expires) && (qu[0].expires <= now || full) {
			rs.uuids.pop(rs.track)
		} else if len(qt) > 0 && (qt[0].expires <= now || full) {
			rs.texts.pop(rs.track)
		} else {
			break
		}
	}
	if k, ok := parseUUID(id); ok {
		if p, ok := u.Pack(); ok {
			rs.uuids.put(k, uuidReceipt{r, p}, rs.track)
			return
		}
	}
	rs.texts.put(id, textReceipt{r, u}, rs.track)
}

// recover keeps r under id as read from the file or the log (with no
// undo: that is in the process only).
func (rs *receipts) recover(id string, r receipt) {
	if k, ok := parseUUID(id); ok {
		if rs.uuids.m == nil {
			rs.uuids.m = make(map[uuid]uuidReceipt)
		}
		rs.uuids.m[k] = uuidReceipt{receipt: r}
		rs.uuids.touch(k, rs.track)
		return
	}
	if rs.texts.m == nil {
		rs.texts.m = make(map[string]textReceipt)
	}
	rs.texts.m[id] = textReceipt{receipt: r}
	rs.texts.touch(id, rs.track)
}

// requeue rebuilds the expiry queues from the maps (after a recovery).
func (rs *receipts) requeue() {
	rs.uuids.requeue()
	rs.texts.requeue()
}

// get returns the receipt kept under id (as spelt) and its abuse undo, of
// a send of instance.
func (rs *receipts) get(instance, id string) (receipt, abuse.Undo, bool) {
	if k, ok := parseUUID(id); ok {
		if r, ok := rs.uuids.m[k]; ok {
			return r.receipt, r.undo.Unpack(instance), true
		}
	}
	if r, ok := rs.texts.m[id]; ok {
		return r.receipt, r.undo, true
	}
	return receipt{}, abuse.Undo{}, false
}

// refundable returns id's receipt and abuse undo when a refund may still
// give it back; otherwise false and what the refund answers: RefundUnknown
// (missing, or expired at now) or RefundDuplicate (refunded already).
func (rs *receipts) refundable(instance, id string, now int64) (receipt, abuse.Undo, RefundResult, bool) {
	r, u, ok := rs.get(instance, id)
	switch {
	case !ok || r.expires <= now:
		return receipt{}, abuse.Undo{}, RefundUnknown, false
	case r.done:
		return receipt{}, abuse.Undo{}, RefundDuplicate, false
	}
	return r, u, Refunded, true
}

// refunded marks id's receipt (refundable found it) refunded and forgets
// its undo.
func (rs *receipts) refunded(id string) {
	if k, ok := parseUUID(id); ok {
		if r, ok := rs.uuids.m[k]; ok {
			r.done, r.undo = true, abuse.PackedUndo{}
			rs.uuids.m[k] = r
			rs.uuids.touch(k, rs.track)
			return
		}
	}
	if r, ok := rs.texts.m[id]; ok {
		r.done, r.undo = true, abuse.Undo{}
		rs.texts.m[id] = r
		rs.texts.touch(id, rs.track)
	}
}

// giveBack is s with one send of r given back: the day's count only when
// s still counts r's day, the month's only when it still counts r's month
// (a refund after the period rolled over gives nothing to the new one),
// and a token, never beyond burst.
func giveBack(s limiter.State, day, month int32, burst int64) limiter.State {
	if s.Day == day && s.DayCount > 0 {
		s.DayCount--
	}
	if s.Month == month && s.MonthCount > 0 {
		s.MonthCount--
	}
	if s.Refilled != 0 { // 0: never taken, full
		s.Tokens = math.Min(float64(burst), s.Tokens+1)
	}
	return s
}

// newReceipt is the receipt of a send allowed at now whose instance state
// after the take is next.
func newReceipt(next limiter.State, burst int64, slow bool, slowBurst int64, now time.Time) receipt {
	return receipt{day: next.Day, month: next.Month, slow: slow, burst: burst, slowBurst: slowBurst, expires: now.Add(ReceiptTTL).UnixNano()}
}

// receiptLen is a receipt's encoding: day, month, flags, burst, slow
// burst, expiry.
const receiptLen = 4 + 4 + 1 + 8 + 8 + 8

func appendReceipt(b []byte, r receipt) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(r.day))
	b = binary.BigEndian.AppendUint32(b, uint32(r.month))
	var flags byte
	if r.slow {
		flags |= 1
	}
	if r.done {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(r.burst))
	b = binary.BigEndian.AppendUint64(b, uint64(r.slowBurst))
	return binary.BigEndian.AppendUint64(b, uint64(r.expires))
}

func decodeReceipt(b []byte) (receipt, error) {
	if len(b) != receiptLen {
		return receipt{}, fmt.Errorf("receipt of %d bytes, want %d", len(b), receiptLen)
	}
	return receipt{
		day:       int32(binary.BigEndian.Uint32(b[0:])),
		month:     int32(binary.BigEndian.Uint32(b[4:])),
		slow:      b[8]&1 != 0,
		done:      b[8]&2 != 0,
		burst:     int64(binary.BigEndian.Uint64(b[9:])),
		slowBurst: int64(binary.BigEndian.Uint64(b[17:])),
		expires:   int64(binary.BigEndian.Uint64(b[25:])),
	}, nil
}
