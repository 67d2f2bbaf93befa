package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/decisionlog"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/policies"
)

// recordLog decides a spread of multilingual sends (plain, promotional,
// spammy, wrong purposes, a paused instance) with the embedded policies and
// writes their decision log to a file, returning its path and the lines.
func recordLog(t *testing.T) (string, []map[string]any) {
	t.Helper()
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	phones, err := phone.New(phone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(phones.Close)
	st := store.NewMemory(limiter.Calendar{})
	lim := limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e9, Burst: 1 << 30}
	d, err := decision.New(decision.Options{
		Scanner: risk.New(risk.Options{}), Policy: engine, State: st, Phones: phones,
		Keys: keys.NewKeyring([]keys.Entry{{SHA256: keys.Hash("k"), Key: keys.Key{ID: "k1", Account: "a"}}}),
		Instances: map[string]decision.Instance{
			"shop":   {ID: "shop", Account: "a", Plan: "starter", Limits: lim},
			"paused": {ID: "paused", Account: "a", Plan: "growth", Limits: lim},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetPaused(ctx, "paused", true)
	path := filepath.Join(t.TempDir(), "decisions.log")
	sink, err := decisionlog.NewFileSink(path, 1<<30, 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := decisionlog.New(decisionlog.Options{Sink: sink, PhoneKey: []byte("x"), Buffer: 10000, PolicyRevision: engine.Revision})
	if err != nil {
		t.Fatal(err)
	}
	ld := decisionlog.Wrap(d, l)
	msgs := []string{
		"Your order #2041 has been shipped.", "طلبك رقم 1042 تم شحنه 📦", "आपका ऑर्डर 5531 भेज दिया गया है",
		"Big sale this weekend only, limited time", "Flash sale! 50% off everything, shop now", "Limited offer: buy now and save 30%",
		"Exclusive deal just for you, click here", "YOU HAVE WON A PRIZE!!!!! Claim it at bit.ly/win", "Hurry, sale ends tonight!",
		"Büyük indirim! Şimdi al, %40 indirim", "عرض خاص لفترة محدودة، اشتر الآن", "Special discount, use code SAVE20 today",
	}
	for i, m := range msgs {
		for j, p := range []string{"transactional", "support", "marketing", ""} {
			inst := "shop"
			if (i+j)%7 == 0 {
				inst = "paused"
			}
			body, _ := json.Marshal(map[string]string{"instance_id": inst, "phone": "+966501234567", "message": m, "message_purpose": p})
			if _, err := ld.Decide(ctx, decision.Request{Method: "POST", Path: "/api/send-message", Authorization: "Bearer k", Body: body}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var lines []map[string]any
	for _, ln := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(ln, &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	return path, lines
}

// TestReplay: a recorded log replayed against the policies that made it
// changes nothing; against a draft whose block threshold is 55 instead of
// 70, exactly the sends the policies allowed with a score of 55 or more
// flip to policy_violation, and they are counted and sampled.
func TestReplay(t *testing.T) {
	path, lines := recordLog(t)
	ctx := context.Background()

	var out bytes.Buffer
	if err := run(ctx, []string{"replay", "--log", path}, noenv, nil, &out, &out); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("replayed %d of %d decisions against embedded", len(lines), len(lines))) ||
		!strings.Contains(out.String(), ": 0 change\n") || strings.Contains(out.String(), "*") {
		t.Errorf("replay against the same policies:\n%s\nwant every decision replayed and 0 change", out.String())
	}

	draft := t.TempDir()
	if err := os.CopyFS(draft, policies.FS); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(draft, "sendguard", "config", "data.json")
	raw, _ := os.ReadFile(data)
	edited := strings.Replace(string(raw), `"block_threshold": 70`, `"block_threshold": 55`, 1)
	if edited == string(raw) {
		t.Fatal("data.json has no block_threshold 70 to lower")
	}
	os.Chmod(data, 0o600)
	if err := os.WriteFile(data, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, ln := range lines {
		if s, ok := ln["risk_score"].(float64); ok && ln["policy_result"] == "allowed" && s >= 55 {
			want++
		}
	}
	if want == 0 {
		t.Fatal("the recorded sends have no allowed score from 55 to 69: the test proves nothing")
	}
	out.Reset()
	if err := run(ctx, []string{"replay", "--log", path, "--policies", draft, "--sample", "3"}, noenv, nil, &out, &out); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	got := regexp.MustCompile(`(?m)^\* allowed +→ policy_violation +(\d+)$`).FindStringSubmatch(out.String())
	if got == nil || got[1] != strconv.Itoa(want) || !strings.Contains(out.String(), fmt.Sprintf(": %d change\n", want)) {
		t.Errorf("replay against the draft:\n%s\nwant %d allowed → policy_violation and nothing else changed", out.String(), want)
	}
	if n := strings.Count(out.String(), " allowed → policy_violation  risk_score "); n != min(3, want) {
		t.Errorf("%d sampled flips, want %d:\n%s", n, min(3, want), out.String())
	}
}

// TestCheckShadow: `sendguard check` on an instance in shadow mode says
// that the denial is not enforced and names the header the sender gets,
// then shows the denial it would have answered.
func TestCheckShadow(t *testing.T) {
	dir := t.TempDir()
	cfg := devstackConfig(t, dir, "shadow: true\n")
	prize := `{"instance_id":"inst_12345","phone":"+966501234567","message":"YOU HAVE WON A PRIZE!!!!!","message_purpose":"transactional"}`
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check", "--config", cfg, "--key", "demo-key-starter"}, noenv, strings.NewReader(prize), &out, &errOut); err != nil {
		t.Fatalf("check: %v\n%s", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "shadow mode: not enforced; forwarded to the sender with x-sendguard-shadow-decision: policy_violation\nwould answer:\nHTTP 403\n") {
		t.Errorf("check in shadow mode printed:\n%s", out.String())
	}
}
