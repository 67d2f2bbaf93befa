package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
)

// dryRun answers Take from the store's usage without consuming, and keeps
// the abuse counters in a tracker of its own, so check never changes state.
type dryRun struct {
	stateStore
	cal     limiter.Calendar
	counter *abuse.Tracker
}

func (d dryRun) TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	return d.counter.TakeSend(ctx, s, now, func(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
		return abuse.TakeQuota(ctx, d, s, now)
	})
}

func (d dryRun) Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error) {
	return d.counter.Violation(ctx, instance, window, now)
}

func (d dryRun) ResetViolations(ctx context.Context, instance string) error {
	return d.counter.ResetViolations(ctx, instance)
}

func (d dryRun) Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error) {
	u, err := d.Usage(ctx, instance, l, now)
	if err != nil {
		return limiter.Outcome{}, err
	}
	s := limiter.State{Day: u.Day, DayCount: u.DailyUsed, Month: u.Month, MonthCount: u.MonthlyUsed, Tokens: u.Tokens, Refilled: now.UnixNano()}
	_, out := d.cal.Decide(s, l, now)
	return out, nil
}

func (d dryRun) SetPaused(context.Context, string, bool) error { return nil }

// headerFlags collects repeated -H "Name: value" flags.
type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	*h = append(*h, [2]string{strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)})
	return nil
}

// get returns the last value of the header name (lower case).
func (h headerFlags) get(name string) string {
	v := ""
	for _, kv := range h {
		if kv[0] == name {
			v = kv[1]
		}
	}
	return v
}

// check evaluates one send request offline and prints what Envoy would
// answer, and the risk breakdown, for policy authors.
func check(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	fs.StringVar(&f.config, "config", getenv("SENDGUARD_CONFIG"), "config file (env SENDGUARD_CONFIG)")
	fs.StringVar(&f.policies, "policies", getenv("SENDGUARD_POLICIES"), "Rego policy directory instead of the embedded policies")
	key := fs.String("key", "", "the API key to send as Authorization: Bearer")
	var headers headerFlags
	fs.Var(&headers, "H", "a request header, \"Name: value\" (repeatable; the decision reads Authorization, Content-Type and Content-Encoding)")
	method := fs.String("method", "POST", "HTTP method")
	path := fs.String("path", "/api/send-message", "HTTP path")
	bodyFile := fs.String("body", "-", "the request body: a file, or - for stdin")
	state := fs.String("state", "config", "config: the config's seeds; store: the configured store, read without changing it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.config == "" {
		f.config = "sendguard.yaml"
	}
	var body []byte
	var err error
	if *bodyFile == "-" {
		body, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		body, err = os.ReadFile(*bodyFile)
	}
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	f.checkOnly = *state != "store"
	f.readOnly = *state == "store"
	a, err := build(ctx, f, slog.New(slog.DiscardHandler), getenv)
	if err != nil {
		return err
	}
	defer a.phones.Close()
	defer a.store.Close()
	dry := dryRun{stateStore: a.store, cal: limiter.Calendar{Loc: a.cfg.Location()}, counter: abuse.New(abuse.Options{MaxRecords: 64, SketchWidth: 64, Shards: 1})}
	a.decider.SetState(dry)
	a.decider.SetAbuse(dry)

	auth := headers.get("authorization")
	if *key != "" {
		auth = "Bearer " + *key
	}
	p, q, _ := strings.Cut(*path, "?")
	res, err := a.decider.Decide(ctx, decision.Request{Method: strings.ToUpper(*method), Path: p, Query: q, Authorization: auth,
		ContentType: headers.get("content-type"), ContentEncoding: headers.get("content-encoding"), Body: body})
	if err != nil {
		fmt.Fprintf(stdout, "HTTP 503 (sendguard could not decide: %v)\n", err)
		return nil
	}
	switch {
	case !res.Send:
		fmt.Fprintln(stdout, "not the send path: forwarded untouched")
	case res.Allowed:
		fmt.Fprintf(stdout, "allowed: forwarded to the sender with\nx-sendguard-decision-id: %s\nx-sendguard-risk-score: %d\nx-sendguard-purpose: %s\nx-sendguard-phone: %s\n", res.ID, res.RiskScore, res.Purpose, res.Phone)
	default:
		if res.Shadow {
			fmt.Fprintf(stdout, "shadow mode: not enforced; forwarded to the sender with x-sendguard-shadow-decision: %s\nwould answer:\n", res.Code)
		}
		fmt.Fprintf(stdout, "HTTP %d\ncontent-type: application/json\nx-sendguard-decision-id: %s\n", res.Status, res.ID)
		for _, h := range res.Headers {
			fmt.Fprintf(stdout, "%s: %s\n", h.Key, h.Value)
		}
		fmt.Fprintf(stdout, "\n%s\n", res.Body)
	}
	return explain(ctx, a.engine, a.scanner, body, stdout)
}

// reading prints m's probabilities for text and the n-grams that pushed
// the most probable class most.
func reading(w io.Writer, m *model.Model, text string) {
	p := m.Predict(text, nil)
	best := 0
	for c, name := range m.Classes {
		fmt.Fprintf(w, " %s=%.1f%%", name, 100*p[c])
		if p[c] > p[best] {
			best = c
		}
	}
	fmt.Fprintf(w, "\nn-grams that pushed %s most:", m.Classes[best])
	for _, c := range m.Explain(text, best, 5) {
		fmt.Fprintf(w, " %q(%s %+.2f)", c.Feature, c.Kind, c.Weight)
	}
	fmt.Fprintln(w)
}

// explain prints the signals of the message and each one's weight.
func explain(ctx context.Context, e *policy.Engine, sc *risk.Scanner, body []byte, w io.Writer) error {
	var req struct {
		Message string `json:"message"`
		Purpose any    `json:"message_purpose"`
	}
	if json.Unmarshal(body, &req) != nil || req.Message == "" {
		return nil
	}
	sig := sc.Scan(req.Message)
	purpose, ok := req.Purpose.(string)
	b, err := e.Explain(ctx, policy.Input{Purpose: purpose, PurposePresent: ok, Signals: sig})
	if err != nil || b == nil {
		return err
	}
	fmt.Fprint(w, "\nrisk signals:")
	v := reflect.ValueOf(sig)
	for i := range v.NumField() {
		if n := v.Field(i).Int(); n != 0 {
			fmt.Fprintf(w, " %s=%d", v.Type().Field(i).Name, n)
		}
	}
	if m := sc.Model(); m != nil {
		fmt.Fprint(w, "\ncontent model:")
		reading(w, m, req.Message)
		if sig.ModelSegmentLead > 0 {
			seg, lead := sc.StrongestSegment(req.Message)
			fmt.Fprintf(w, "segment read alone (lead %.0f%% over transactional): %q\nits content model:", 100*lead, seg)
			reading(w, m, seg)
		}
	}
	fmt.Fprint(w, "\nrisk breakdown (each signal's contribution to risk_score):\n")
	names := make([]string, 0, len(b))
	for k := range b {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if fmt.Sprint(b[k]) != "0" {
			fmt.Fprintf(w, "  %-26s %v\n", k, b[k])
		}
	}
	return nil
}
