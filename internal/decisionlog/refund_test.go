package decisionlog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLogRefund: a refund is one line of its own, byte for byte: the
// decision id it gave back, result "refund", what the refund did, the
// instance (any script), the failed status and who failed; a store error
// is named.
func TestLogRefund(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.log")
	sink, err := NewFileSink(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Sink: sink, PhoneKey: []byte("k"), ConfigRevision: "cfg-1"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	l.LogRefund(at, "01a21d62-26cb-738b-922e-158cc2527454", "متجر_١", "refunded", 503, "sender", nil)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	l2, err := New(Options{Sink: mustFileSink(t, path+".2"), Phone: PhoneOmit})
	if err != nil {
		t.Fatal(err)
	}
	l2.LogRefund(at, "d2", "shop", "error", 502, "envoy", errors.New("redis refund shop: i/o timeout"))
	if err := l2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{path, `{"time":"2026-05-08T10:00:00Z","decision_id":"01a21d62-26cb-738b-922e-158cc2527454","result":"refund","refund_result":"refunded","instance_id":"متجر_١","status":503,"by":"sender","config_revision":"cfg-1"}` + "\n"},
		{path + ".2", `{"time":"2026-05-08T10:00:00Z","decision_id":"d2","result":"refund","refund_result":"error","instance_id":"shop","status":502,"by":"envoy","error":"redis refund shop: i/o timeout"}` + "\n"},
	} {
		got, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("LogRefund line =\n%s\nwant\n%s", got, tc.want)
		}
	}
}

func mustFileSink(t *testing.T, path string) Sink {
	t.Helper()
	s, err := NewFileSink(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
