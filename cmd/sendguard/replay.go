package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
)

// replayLine is what replay reads of a decision-log line.
type replayLine struct {
	DecisionID   string `json:"decision_id"`
	PolicyResult string `json:"policy_result"`
	RiskScore    int    `json:"risk_score"`
	Input        *struct {
		Instance struct {
			ID     string `json:"id"`
			Plan   string `json:"plan"`
			Paused bool   `json:"paused"`
		} `json:"instance"`
		Purpose   *string `json:"purpose"`
		Recipient struct {
			Suppressed bool `json:"suppressed"`
		} `json:"recipient"`
		Signals map[string]int `json:"signals"`
	} `json:"input"`
}

// replay re-evaluates the policy inputs of a decision log against a policy
// tree (a draft) and prints what would change: counts by old → new policy
// answer, and a sample of the decisions that flip. Only the policy step is
// replayed (steps 5 to 9): quotas, buckets and abuse counters are state of
// their moment. The recipient's number is not in the log, so a policy that
// reads input.recipient.phone sees "".
//
//	sendguard replay --log FILE [--policies DIR] [--sample N]
func replay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logPath := fs.String("log", "", "decision log file (JSON lines; - for stdin)")
	dir := fs.String("policies", getenv("SENDGUARD_POLICIES"), "the policy tree to replay against; empty: the embedded policies")
	sample := fs.Int("sample", 10, "decisions that flip to print")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logPath == "" {
		return errors.New("replay: --log is required")
	}
	engine, err := policy.New(ctx, policy.Options{Dir: *dir, CacheEntries: -1})
	if err != nil {
		return fmt.Errorf("replay: load policies: %w", err)
	}
	var r io.Reader = os.Stdin
	if *logPath != "-" {
		f, err := os.Open(*logPath)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		r = f
	}
	type flip struct {
		id, instance, from, to string
		oldScore, newScore     int
	}
	counts := map[[2]string]int{}
	var flips []flip
	var read, replayed, changed int
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		read++
		var ln replayLine
		if err := json.Unmarshal(sc.Bytes(), &ln); err != nil {
			return fmt.Errorf("replay: line %d: %w", read, err)
		}
		if ln.Input == nil || ln.PolicyResult == "" {
			continue // the policy did not run for this one (an earlier step answered)
		}
		in := policy.Input{InstanceID: ln.Input.Instance.ID, Plan: ln.Input.Instance.Plan, Paused: ln.Input.Instance.Paused,
			Suppressed: ln.Input.Recipient.Suppressed, Signals: signalsOf(ln.Input.Signals)}
		if ln.Input.Purpose != nil {
			in.Purpose, in.PurposePresent = *ln.Input.Purpose, true
		}
		d, err := engine.Eval(ctx, in)
		if err != nil {
			return fmt.Errorf("replay: decision %s: %w", ln.DecisionID, err)
		}
		now := d.Error
		if d.Allow {
			now = "allowed"
		}
		replayed++
		counts[[2]string{ln.PolicyResult, now}]++
		if now != ln.PolicyResult {
			changed++
			if len(flips) < *sample {
				flips = append(flips, flip{ln.DecisionID, in.InstanceID, ln.PolicyResult, now, ln.RiskScore, d.RiskScore})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fmt.Fprintf(stdout, "replayed %d of %d decisions against %s (revision %s): %d change\n", replayed, read, engine.Source(), engine.Revision(), changed)
	keys := make([][2]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1]
	})
	for _, k := range keys {
		mark := " "
		if k[0] != k[1] {
			mark = "*"
		}
		fmt.Fprintf(stdout, "%s %-30s → %-30s %d\n", mark, k[0], k[1], counts[k])
	}
	if len(flips) > 0 {
		fmt.Fprintln(stdout, "\nsample of the decisions that change:")
		for _, f := range flips {
			fmt.Fprintf(stdout, "  %s  %s  %s → %s  risk_score %d → %d\n", f.id, f.instance, f.from, f.to, f.oldScore, f.newScore)
		}
	}
	return nil
}

// signalsOf reads the signals by their policy input names.
func signalsOf(m map[string]int) risk.Signals {
	return risk.Signals{
		PromoTerms: m["promo_terms"], CallsToAction: m["calls_to_action"], DiscountCodes: m["discount_codes"],
		Percentages: m["percentages"], PrizeClaims: m["prize_claims"], ColdOutreach: m["cold_outreach"],
		Political: m["political"], Transactional: m["transactional"], ShortenerLinks: m["shortener_links"],
		Links: m["links"], CapsRatioPct: m["caps_ratio_pct"], Exclamations: m["exclamations"],
		Emoji: m["emoji"], Length: m["length"],
		ModelTransactional: m["p_transactional"], ModelPromotional: m["p_promotional"],
		ModelColdOutreach: m["p_cold_outreach"], ModelPolitical: m["p_political"], ModelScam: m["p_scam"],
		ModelSegmentLead: m["segment_lead"],
	}
}
