package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

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
// A receipt takes about 260 bytes of heap with its decision id and its
// abuse undo (TestReceiptsBounded; about 200 and one object in
// TestReceiptHeapWithAbuse), so 26 MB per instance at the bound.
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

// receipt is what one allowed send took.
type receipt struct {
	day, month       int32      // the calendar day and month it was counted in
	slow             bool       // it took a slow-lane token (and slow-lane day/month counts)
	done             bool       // refunded
	burst, slowBurst int64      // the buckets' capacities when it was taken
	expires          int64      // unix nanoseconds
	undo             abuse.Undo // takes the abuse counts back; in the process only
}

// receipts are one instance's, guarded by its instanceState's mu.
type receipts struct {
	m map[string]*receipt
	q []queued // by expiry (takes come in time order), for expiry and the bound
	// changed lists the ids put, refunded or dropped since the embedded
	// store's last checkpoint (track: the embedded store's only).
	track   bool
	changed []string
}

type queued struct {
	id      string
	expires int64
}

// put keeps r under id, first dropping what expired at now and, at the
// bound, the oldest.
func (rs *receipts) put(id string, r *receipt, now int64) {
	if rs.m == nil {
		rs.m = make(map[string]*receipt)
	}
	for len(rs.q) > 0 && (rs.q[0].expires <= now || len(rs.m) >= MaxReceipts) {
		old := rs.q[0]
		rs.q[0] = queued{}
		rs.q = rs.q[1:]
		if cur, ok := rs.m[old.id]; ok && cur.expires == old.expires {
			delete(rs.m, old.id)
			rs.touch(old.id)
		}
	}
	rs.m[id] = r
	rs.q = append(rs.q, queued{id, r.expires})
	rs.touch(id)
}

// touch notes that id changed, for the next checkpoint.
func (rs *receipts) touch(id string) {
	if rs.track {
		rs.changed = append(rs.changed, id)
	}
}

// requeue rebuilds the expiry queue from the map (after a recovery).
func (rs *receipts) requeue() {
	rs.q = rs.q[:0]
	for id, r := range rs.m {
		rs.q = append(rs.q, queued{id, r.expires})
	}
	slices.SortFunc(rs.q, func(a, b queued) int { return cmp.Compare(a.expires, b.expires) })
}

// refundable returns id's receipt when a refund may still give it back;
// otherwise nil and what the refund answers: RefundUnknown (missing, or
// expired at now) or RefundDuplicate (refunded already).
func (rs *receipts) refundable(id string, now int64) (*receipt, RefundResult) {
	r, ok := rs.m[id]
	switch {
	case !ok || r.expires <= now:
		return nil, RefundUnknown
	case r.done:
		return nil, RefundDuplicate
	}
	return r, Refunded
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
func newReceipt(next limiter.State, burst int64, slow bool, slowBurst int64, now time.Time) *receipt {
	return &receipt{day: next.Day, month: next.Month, slow: slow, burst: burst, slowBurst: slowBurst, expires: now.Add(ReceiptTTL).UnixNano()}
}

// receiptLen is a receipt's encoding: day, month, flags, burst, slow
// burst, expiry.
const receiptLen = 4 + 4 + 1 + 8 + 8 + 8

func appendReceipt(b []byte, r *receipt) []byte {
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

func decodeReceipt(b []byte) (*receipt, error) {
	if len(b) != receiptLen {
		return nil, fmt.Errorf("receipt of %d bytes, want %d", len(b), receiptLen)
	}
	return &receipt{
		day:       int32(binary.BigEndian.Uint32(b[0:])),
		month:     int32(binary.BigEndian.Uint32(b[4:])),
		slow:      b[8]&1 != 0,
		done:      b[8]&2 != 0,
		burst:     int64(binary.BigEndian.Uint64(b[9:])),
		slowBurst: int64(binary.BigEndian.Uint64(b[17:])),
		expires:   int64(binary.BigEndian.Uint64(b[25:])),
	}, nil
}
