package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sendguard/sendguard/internal/limiter"
)

// The embedded store's write-ahead log: quota states appended before a
// decision is answered, replayed at open on top of the last checkpoint in
// the bbolt file.
//
// A log file is <store path>.wal-<generation>. A record is
//
//	length  uint32  (big-endian) bytes of payload
//	crc     uint32  CRC-32C of the payload
//	payload n uint8, then n × (id length uint16, id, state stateLen bytes)
//
// and holds the full states a decision wrote (an instance, and its slow lane
// with it), so replaying is "last record wins" per id and a decision's
// states are applied together or not at all. Replay stops at the first
// record that is short or fails its checksum: that is the tail a process
// or power loss cut, and no record after it was acknowledged as durable
// (writes are sequential).
//
// A record that also carries refund receipts (an allowed TakeSend with a
// decision id, or a Refund) has a payload that starts with the byte 0xFF
// (never a count of states), then the states as above, then m uint8 and m
// × (instance length uint16, instance, decision id length uint16, id,
// receipt receiptLen bytes): the states and the receipts of one decision
// are applied together or not at all. (A sendguard older than refunds
// reads such a record as a torn tail: do not downgrade onto a log that
// holds one; a clean Close leaves no log.)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	walHeaderLen = 8
	maxIDLen     = 1<<16 - 1
)

// walEntry is one id's state in a record.
type walEntry struct {
	id string
	s  limiter.State
}

// walReceipt is one refund receipt in a record.
type walReceipt struct {
	instance, id string
	r            receipt
}

// withReceipts marks a payload that carries receipts after its states.
const withReceipts = 0xFF

// appendRecord appends the record of entries and receipts rcs (none: nil)
// to buf.
func appendRecord(buf []byte, entries []walEntry, rcs []walReceipt) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, walHeaderLen)...)
	if len(rcs) > 0 {
		buf = append(buf, withReceipts)
	}
	buf = append(buf, byte(len(entries)))
	for _, e := range entries {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(e.id)))
		buf = append(buf, e.id...)
		buf = appendState(buf, e.s)
	}
	if len(rcs) > 0 {
		buf = append(buf, byte(len(rcs)))
		for _, r := range rcs {
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(r.instance)))
			buf = append(buf, r.instance...)
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(r.id)))
			buf = append(buf, r.id...)
			buf = appendReceipt(buf, r.r)
		}
	}
	payload := buf[start+walHeaderLen:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	return buf
}

// readRecords calls fn with each complete, intact record's entries in b,
// in order, and rfn (when not nil) with its receipts, after its states, and
// returns how many bytes they span. It stops at the first short or damaged
// record.
func readRecords(b []byte, fn func(id string, s limiter.State), rfn func(instance, id string, r receipt)) int {
	off := 0
	for len(b)-off >= walHeaderLen {
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n == 0 || n > len(b)-off-walHeaderLen {
			break
		}
		payload := b[off+walHeaderLen : off+walHeaderLen+n]
		if crc32.Checksum(payload, crcTable) != sum {
			break
		}
		entries, rcs, ok := decodePayload(payload)
		if !ok {
			break
		}
		for _, e := range entries {
			fn(e.id, e.s)
		}
		if rfn != nil {
			for _, r := range rcs {
				rfn(r.instance, r.id, r.r)
			}
		}
		off += walHeaderLen + n
	}
	return off
}

func decodePayload(p []byte) ([]walEntry, []walReceipt, bool) {
	if len(p) < 1 {
		return nil, nil, false
	}
	hasRc := p[0] == withReceipts
	if hasRc {
		p = p[1:]
		if len(p) < 1 {
			return nil, nil, false
		}
	}
	count := int(p[0])
	p = p[1:]
	out := make([]walEntry, 0, count)
	for range count {
		if len(p) < 2 {
			return nil, nil, false
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+l+stateLen {
			return nil, nil, false
		}
		s, err := decodeState(p[2+l : 2+l+stateLen])
		if err != nil {
			return nil, nil, false
		}
		out = append(out, walEntry{id: string(p[2 : 2+l]), s: s})
		p = p[2+l+stateLen:]
	}
	if !hasRc {
		return out, nil, len(p) == 0
	}
	if len(p) < 1 {
		return nil, nil, false
	}
	m := int(p[0])
	p = p[1:]
	rcs := make([]walReceipt, 0, m)
	str := func() (string, bool) {
		if len(p) < 2 {
			return "", false
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+l {
			return "", false
		}
		v := string(p[2 : 2+l])
		p = p[2+l:]
		return v, true
	}
	for range m {
		inst, ok1 := str()
		id, ok2 := str()
		if !ok1 || !ok2 || len(p) < receiptLen {
			return nil, nil, false
		}
		r, err := decodeReceipt(p[:receiptLen])
		if err != nil {
			return nil, nil, false
		}
		rcs = append(rcs, walReceipt{inst, id, r})
		p = p[receiptLen:]
	}
	return out, rcs, len(p) == 0
}

// walName is the log file of generation gen for the store at path.
func walName(path string, gen uint64) string {
	return path + ".wal-" + strconv.FormatUint(gen, 10)
}

// walFiles lists the log files of the store at path by generation,
// oldest first.
func walFiles(path string) ([]uint64, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".wal-")
		if !ok {
			continue
		}
		if g, err := strconv.ParseUint(rest, 10, 64); err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// replayWAL applies the intact records of one log file to fn.
func replayWAL(name string, fn func(id string, s limiter.State), rfn func(instance, id string, r receipt)) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read write-ahead log %s: %w", name, err)
	}
	readRecords(b, fn, rfn)
	return nil
}

// createWAL creates a new, empty log file and makes its directory entry
// durable, so that records later fsync'd into it are found after a power
// loss.
func createWAL(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create write-ahead log: %w", err)
	}
	if err := syncDir(filepath.Dir(name)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
