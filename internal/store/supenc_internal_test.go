package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestSuppressionEncoding: the compact value round-trips every field
// (nanoseconds, reasons in any script, empty strings); a file written
// before it, with JSON values, is still read; a damaged value is
// ErrCorrupt, not a panic.
func TestSuppressionEncoding(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)
	for _, s := range []Suppression{
		{Instance: "متجر", Phone: "+966501234567", Reason: "طلب العميل", Source: "import", CreatedAt: at},
		{Instance: "दुकान", Phone: "+919876543210", Reason: "ग्राहक ने मना किया 🛑", Source: "", CreatedAt: time.Unix(0, 0).UTC()},
		{Instance: "İstanbul", Phone: "+905321234567"},
	} {
		k := supKey(s.Instance, s.Phone)
		got, err := decodeSup(k, encodeSup(s))
		if err != nil || got != s {
			t.Errorf("decodeSup(encodeSup(%+v)) = %+v, %v", s, got, err)
		}
		for n := range len(encodeSup(s)) {
			if _, err := decodeSup(k, encodeSup(s)[:n]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("decodeSup of %d of %d bytes = %v, want ErrCorrupt", n, len(encodeSup(s)), err)
			}
		}
	}

	e, err := OpenEmbedded(filepath.Join(t.TempDir(), "s.db"), EmbeddedOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	old := Suppression{Instance: "shop", Phone: "+966501234567", Reason: "recipient_requested_stop", Source: "inbound", CreatedAt: at}
	v, _ := json.Marshal(old)
	if err := e.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bSup).Put(supKey(old.Instance, old.Phone), v) }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, err := e.Suppression(ctx, "shop", old.Phone); err != nil || got != old {
		t.Errorf("Suppression of a JSON value = %+v, %v, want %+v", got, err, old)
	}
	if n, err := e.AddSuppressions(ctx, []Suppression{{Instance: "shop", Phone: "+14155550100", Reason: "import", CreatedAt: at}}); n != 1 || err != nil {
		t.Fatalf("AddSuppressions = %d, %v", n, err)
	}
	if list, err := e.Suppressions(ctx, "shop"); err != nil || len(list) != 2 || list[1] != old {
		t.Errorf("Suppressions over both encodings = %+v, %v", list, err)
	}
}
