package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/risk"
)

func engine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEmbeddedDecisions(t *testing.T) {
	e := engine(t, Options{})
	spam := risk.New(risk.Options{}).Scan("YOU HAVE WON A PRIZE!!!!!")
	ok := Input{InstanceID: "inst_12345", Plan: "starter", Purpose: " Transactional ", PurposePresent: true, Phone: "+966501234567"}
	tests := []struct {
		name string
		edit func(*Input)
		want Decision
	}{
		{"allow", func(*Input) {}, Decision{Allow: true, Purpose: "transactional"}},
		{"paused marketing spam", func(in *Input) { in.Paused, in.Purpose, in.Signals = true, "marketing", spam },
			Decision{Error: "instance_paused_for_review", RiskScore: 90, Purpose: "marketing"}},
		{"no purpose", func(in *Input) { in.PurposePresent = false }, Decision{Error: "message_purpose_required"}},
		// A purpose value present but not a string reaches the policy as absent.
		{"no purpose ignores value", func(in *Input) { in.PurposePresent, in.Purpose = false, "transactional" }, Decision{Error: "message_purpose_required"}},
		{"unknown purpose", func(in *Input) { in.Purpose = "newsletter" }, Decision{Error: "message_purpose_required", Purpose: "newsletter"}},
		{"marketing", func(in *Input) { in.Purpose = "MARKETING" }, Decision{Error: "message_purpose_not_allowed", Purpose: "marketing"}},
		{"suppressed", func(in *Input) { in.Suppressed = true; in.Signals = spam }, Decision{Error: "recipient_suppressed", RiskScore: 90, Purpose: "transactional"}},
		{"spam", func(in *Input) { in.Signals = spam }, Decision{Error: "policy_violation", RiskScore: 90, Purpose: "transactional"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ok
			tt.edit(&in)
			got, err := e.Eval(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Eval = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const allowAll = `package sendguard.decision

result := {"allow": true, "error": "", "risk_score": data.sendguard.tuning.score, "purpose": "x"}
`

// probeFile is a probe file with one probe send whose expected answer is
// want.
func probeFile(want string) string {
	return fmt.Sprintf(`{"probes": [{"name": "any send", "purpose": "transactional", "message": "hello", "want": %q}]}`, want)
}

const tuningSchema = `{"type": "object", "additionalProperties": false, "required": ["score"],
	"properties": {"score": {"type": "integer", "minimum": 0, "maximum": 100}}}`

func TestDirectoryAndReload(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"sendguard/decision.rego":           allowAll,
		"sendguard/decision_test.rego":      "package broken(",
		"sendguard/tuning/data.json":        `{"score": 7}`,
		"schemas/sendguard/tuning.json":     tuningSchema,
		ProbesFile:                          probeFile("allowed"),
		"sendguard/unrelated/notes.txt":     "ignored",
		"sendguard/unrelated/settings.yaml": "ignored: true",
	})
	e := engine(t, Options{Dir: dir})
	got, err := e.Eval(context.Background(), Input{})
	if err != nil || got != (Decision{Allow: true, RiskScore: 7, Purpose: "x"}) {
		t.Fatalf("Eval = %+v, %v", got, err)
	}
	if e.Source() != dir {
		t.Errorf("Source = %q", e.Source())
	}

	// A broken edit is refused and the previous policies stay in force.
	os.WriteFile(filepath.Join(dir, "sendguard/decision.rego"), []byte("package sendguard.decision\nresult := "), 0o644)
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("Reload accepted a module that does not parse")
	}
	if got, _ := e.Eval(context.Background(), Input{}); got.RiskScore != 7 {
		t.Errorf("after a failed reload Eval = %+v", got)
	}

	os.WriteFile(filepath.Join(dir, "sendguard/tuning/data.json"), []byte(`{"score": 9}`), 0o644)
	os.WriteFile(filepath.Join(dir, "sendguard/decision.rego"), []byte(allowAll), 0o644)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Eval(context.Background(), Input{}); got.RiskScore != 9 {
		t.Errorf("after reload Eval = %+v, want risk 9", got)
	}
}

func TestBadPolicies(t *testing.T) {
	tests := map[string]map[string]string{
		"no modules":        {"sendguard/data.json": `{}`, ProbesFile: probeFile("allowed")},
		"no probes":         {"a.rego": allowAll, "sendguard/tuning/data.json": `{"score": 1}`, "schemas/sendguard/tuning.json": tuningSchema},
		"no result":         {"a.rego": "package sendguard.decision\nx := 1\n"},
		"result not object": {"a.rego": "package sendguard.decision\nresult := 1\n"},
		"missing allow":     {"a.rego": `package sendguard.decision` + "\n" + `result := {"error": "", "risk_score": 0, "purpose": ""}` + "\n"},
		"score too high":    {"a.rego": `package sendguard.decision` + "\n" + `result := {"allow": true, "error": "", "risk_score": 101, "purpose": ""}` + "\n"},
		"score fractional":  {"a.rego": `package sendguard.decision` + "\n" + `result := {"allow": true, "error": "", "risk_score": 1.5, "purpose": ""}` + "\n"},
		"allow with error":  {"a.rego": `package sendguard.decision` + "\n" + `result := {"allow": true, "error": "policy_violation", "risk_score": 0, "purpose": ""}` + "\n"},
		"deny without code": {"a.rego": `package sendguard.decision` + "\n" + `result := {"allow": false, "error": "", "risk_score": 0, "purpose": ""}` + "\n"},
		"compile error":     {"a.rego": "package sendguard.decision\nresult := y\n"},
		"bad data":          {"a.rego": allowAll, "sendguard/tuning/data.json": `{"score":`},
		"data clash":        {"a.rego": allowAll, "sendguard/tuning/data.json": `{"score": 1}`, "sendguard/data.json": `{"tuning": 2}`},
	}
	for name, files := range tests {
		t.Run(name, func(t *testing.T) {
			if _, ok := files[ProbesFile]; !ok && name != "no probes" {
				files[ProbesFile] = probeFile("allowed")
			}
			if _, ok := files["sendguard/tuning/data.json"]; ok && name != "data clash" {
				files["schemas/sendguard/tuning.json"] = tuningSchema
			}
			_, err := New(context.Background(), Options{Dir: writeTree(t, files)})
			if err == nil {
				t.Error("New accepted broken policies")
			}
		})
	}
	if _, err := New(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
}

func BenchmarkEval(b *testing.B) {
	e := engine(b, Options{})
	in := Input{InstanceID: "inst_12345", Plan: "starter", Purpose: "transactional", PurposePresent: true, Phone: "+966501234567",
		Signals: risk.New(risk.Options{}).Scan("Your order #1042 has shipped and will arrive on Tuesday.")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := e.Eval(ctx, in); err != nil || !d.Allow {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkEvalUncached is the OPA evaluation itself, memo off: the cost of
// every input the memo has not seen.
func BenchmarkEvalUncached(b *testing.B) {
	e := engine(b, Options{CacheEntries: -1})
	in := Input{InstanceID: "inst_12345", Plan: "starter", Purpose: "transactional", PurposePresent: true, Phone: "+966501234567",
		Signals: risk.New(risk.Options{}).Scan("Your order #1042 has shipped and will arrive on Tuesday.")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := e.Eval(ctx, in); err != nil || !d.Allow {
			b.Fatal(d, err)
		}
	}
}

func TestExplain(t *testing.T) {
	e := engine(t, Options{})
	sig := risk.New(risk.Options{}).Scan("YOU HAVE WON A PRIZE!!!!!")
	b, err := e.Explain(context.Background(), Input{Purpose: "transactional", PurposePresent: true, Signals: sig})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b["prize_claims"]) != "70" || fmt.Sprint(b["caps"]) != "10" || fmt.Sprint(b["exclamations"]) != "10" {
		t.Errorf("breakdown = %v", b)
	}
}
