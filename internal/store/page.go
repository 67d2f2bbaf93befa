package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrBadCursor is returned by SuppressionPage for a cursor no page of
// this kind of store returned.
var ErrBadCursor = errors.New("bad cursor")

// The memory and embedded stores list suppressions ordered by phone; their
// cursor is "p" and the last phone of the page in unpadded base64url. The
// Redis store pages with HSCAN; its cursor is "r" and HSCAN's cursor. Both
// are safe in a URL's query as they are.

func phoneCursor(phone string) string {
	return "p" + base64.RawURLEncoding.EncodeToString([]byte(phone))
}

// afterPhone reads a memory or embedded store's cursor: "" for the first
// page, else the phone the previous page ended with.
func afterPhone(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	d, ok := strings.CutPrefix(cursor, "p")
	b, err := base64.RawURLEncoding.DecodeString(d)
	if !ok || err != nil || len(b) == 0 {
		return "", ErrBadCursor
	}
	return string(b), nil
}

// SuppressionPage lists instance's suppressions a page at a time, ordered
// by phone: at most limit (at least 1) after cursor ("" for the first
// page). next is the cursor of the following page, "" after the last.
func (m *Memory) SuppressionPage(_ context.Context, instance, cursor string, limit int) (list []Suppression, next string, err error) {
	after, err := afterPhone(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = max(limit, 1)
	m.mu.RLock()
	for k, s := range m.suppress {
		if k.instance == instance && s.Phone > after {
			list = append(list, s)
		}
	}
	m.mu.RUnlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Phone < list[j].Phone })
	if len(list) > limit {
		list = list[:limit]
		next = phoneCursor(list[limit-1].Phone)
	}
	return list, next, nil
}

// SuppressionPage lists instance's suppressions a page at a time, ordered
// by phone, as Memory.SuppressionPage does, from one read transaction per
// page: a page holds at most limit suppressions in memory, however many the
// instance has.
func (e *Embedded) SuppressionPage(_ context.Context, instance, cursor string, limit int) (list []Suppression, next string, err error) {
	after, err := afterPhone(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = max(limit, 1)
	prefix := supKey(instance, "")
	err = e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bSup).Cursor()
		start := supKey(instance, after)
		k, v := c.Seek(start)
		if after != "" && bytes.Equal(k, start) {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(list) == limit {
				next = phoneCursor(list[limit-1].Phone)
				return nil
			}
			s, err := decodeSup(k, v)
			if err != nil {
				return err
			}
			list = append(list, s)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return list, next, nil
}

// SuppressionPage lists instance's suppressions a page at a time with
// HSCAN: in Redis's order, not the phones', about limit per page (HSCAN's
// COUNT is a hint: a small hash comes whole in one page), and a phone may
// come twice while Redis resizes the hash. next is "" after the last page.
func (r *Redis) SuppressionPage(ctx context.Context, instance, cursor string, limit int) (list []Suppression, next string, err error) {
	var at uint64
	if cursor != "" {
		d, ok := strings.CutPrefix(cursor, "r")
		if at, err = strconv.ParseUint(d, 10, 64); !ok || err != nil || at == 0 {
			return nil, "", ErrBadCursor
		}
	}
	ctx, cancel := r.call(ctx)
	defer cancel()
	kv, at, err := r.c.HScan(ctx, r.supKey(instance), at, "", int64(max(limit, 1))).Result()
	if err != nil {
		return nil, "", fmt.Errorf("redis suppressions %s: %w", instance, err)
	}
	list = make([]Suppression, 0, len(kv)/2)
	for i := 1; i < len(kv); i += 2 {
		var s Suppression
		if err := json.Unmarshal([]byte(kv[i]), &s); err != nil {
			return nil, "", err
		}
		list = append(list, s)
	}
	if at != 0 {
		next = "r" + strconv.FormatUint(at, 10)
	}
	return list, next, nil
}
