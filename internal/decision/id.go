package decision

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"time"
)

// NewID returns a decision id: a UUIDv7 (RFC 9562) text, its first 48 bits
// the Unix milliseconds of now, so ids sort by time to the millisecond, and
// its other 74 free bits random from the runtime's per-thread ChaCha8
// generator (math/rand/v2).
//
// A decision id names a decision in logs and headers; it is not a secret,
// so it needs no crypto/rand read, and unlike uuid.NewV7 it takes no
// process-wide lock (that keeps ids monotonic within a millisecond, which
// nothing here needs). One allocation: the string.
func NewID(now time.Time) string {
	var u [16]byte
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(u[0:8], ms<<16|uint64(rand.Uint32()&0xffff))
	binary.BigEndian.PutUint64(u[8:16], rand.Uint64())
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}
