package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/keys"
)

// TestMemoMetrics: a running serve exports its policy memo's counts, and
// they count: a request seen before is a hit, a first-seen one a miss.
func TestMemoMetrics(t *testing.T) {
	dir := t.TempDir()
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "sendguard.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(processConfig, grpcAddr, adminAddr, "{type: memory}", keys.Hash("key"))), 0o600); err != nil {
		t.Fatal(err)
	}
	startChild(t, path, grpcAddr, adminAddr)
	c := dial(t, grpcAddr)
	metric := func(name string) float64 {
		t.Helper()
		r, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s = %q: %v", name, v, err)
				}
				return f
			}
		}
		t.Fatalf("/metrics has no %s", name)
		return 0
	}
	send := func(msg string) {
		t.Helper()
		req := sendCheckTo("shop", "+966501234567", msg)
		if resp, err := c.Check(context.Background(), req); err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("Check(%q) = %v, %v; want allowed", msg, resp, err)
		}
	}
	send("Your order #1042 has shipped.")
	hits, misses := metric("sendguard_policy_memo_hits_total"), metric("sendguard_policy_memo_misses_total")
	if misses < 1 || metric("sendguard_policy_memo_entries") < 1 {
		t.Fatalf("after a first request: misses %v, entries %v; want at least 1 each", misses, metric("sendguard_policy_memo_entries"))
	}
	send("Your order #1042 has shipped.")
	send("Your order #1042 has shipped.")
	if h, m := metric("sendguard_policy_memo_hits_total"), metric("sendguard_policy_memo_misses_total"); h != hits+2 || m != misses {
		t.Errorf("the same request twice more: hits %v → %v, misses %v → %v; want +2 hits, no miss", hits, h, misses, m)
	}
	// A message the policy reads differently (a purpose-relevant signal
	// changes: a link) is a first-seen input.
	send("Your order #1042 has shipped: https://track.example.com/1042")
	if m := metric("sendguard_policy_memo_misses_total"); m != misses+1 {
		t.Errorf("a first-seen input: misses %v → %v; want +1", misses, m)
	}
}
