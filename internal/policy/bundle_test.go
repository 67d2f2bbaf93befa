package policy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"

	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/policies"
)

// shippedTree copies the embedded policy tree to a directory a test may
// edit.
func shippedTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, policies.FS); err != nil {
		t.Fatal(err)
	}
	return dir
}

const dataFile = "sendguard/config/data.json"

// editJSON rewrites the JSON file name under dir through edit.
func editJSON(t *testing.T, dir, name string, edit func(m map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, name)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// editFile replaces old with new in the file name under dir.
func editFile(t *testing.T, dir, name, old, new string) {
	t.Helper()
	p := filepath.Join(dir, name)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), old) {
		t.Fatalf("%s does not hold %q", name, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(raw), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrokenPolicyData: data that does not match its schema, breaks a
// cross-field rule, or sits where no policy reads it is refused at load, and
// the error names the file and the field. Each of these once loaded and
// silently changed decisions (a string or misspelt block_threshold turned
// content blocking off).
func TestBrokenPolicyData(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, dir string)
		want []string
	}{
		{"threshold as a string", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "risk")["block_threshold"] = "70" })
		}, []string{"sendguard/config/data.json: /risk/block_threshold: expected integer, got string"}},
		{"misspelt key", func(t *testing.T, dir string) {
			editFile(t, dir, dataFile, `"block_threshold"`, `"block_treshold"`)
		}, []string{"sendguard/config/data.json: /risk/block_treshold: unknown key", "sendguard/config/data.json: /risk/block_threshold: required key is missing"}},
		{"fractional threshold", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "risk")["block_threshold"] = 70.5 })
		}, []string{"/risk/block_threshold: expected integer, got number"}},
		{"threshold above 100", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "risk")["block_threshold"] = 101 })
		}, []string{"/risk/block_threshold: must be less than or equal to 100"}},
		{"negative weight", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(obj(m, "risk"), "weights")["prize_claims"] = -35 })
		}, []string{"/risk/weights/prize_claims: must be greater than or equal to 0"}},
		{"missing weight", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { delete(obj(obj(m, "risk"), "weights"), "links") })
		}, []string{"/risk/weights/links: required key is missing"}},
		{"unknown top-level key", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { m["purpose"] = obj(m, "purposes") })
		}, []string{"sendguard/config/data.json: /purpose: unknown key"}},
		{"purpose in capitals", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "purposes")["allowed"] = []any{"Transactional"} })
		}, []string{"/purposes/allowed/0: does not match pattern"}},
		{"throttle above block", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "risk")["throttle_threshold"] = 80 })
		}, []string{"/risk/throttle_threshold: 80 is above /risk/block_threshold 70"}},
		{"allowed purpose not known", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "purposes")["allowed"] = []any{"transactional", "newsletter"} })
		}, []string{`/purposes/allowed: "newsletter" is not in /purposes/known`}},
		{"data file one directory up", func(t *testing.T, dir string) {
			move(t, dir, dataFile, "sendguard/data.json")
		}, []string{"data.sendguard.config: missing"}},
		{"misnamed data directory", func(t *testing.T, dir string) {
			move(t, dir, dataFile, "sendguard/confg/data.json")
		}, []string{"sendguard/confg/data.json: data.sendguard.confg has no schema", "data.sendguard.config: missing"}},
		{"stray data beside the schema'd data", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "sendguard/data.json"), []byte(`{"risk": {"block_threshold": 95}}`), 0o644)
		}, []string{"sendguard/data.json: data.sendguard.risk has no schema"}},
		{"root data file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"sendguard": {"risk": {"block_threshold": 95}}, "other": 1}`), 0o644)
		}, []string{"data.json: data.sendguard.risk has no schema", "data.json: data.other has no schema"}},
		{"tree one directory down", func(t *testing.T, dir string) {
			move(t, dir, "sendguard", "policies/sendguard")
			move(t, dir, "schemas", "policies/schemas")
		}, []string{"sendguard/probes.json is missing"}},
		{"misspelt input reference", func(t *testing.T, dir string) {
			editFile(t, dir, "sendguard/risk.rego", `"prize_claims": input.signals.prize_claims`, `"prize_claims": input.signals.prize_claim`)
		}, []string{"undefined ref: input.signals.prize_claim"}},
		{"misspelt data reference", func(t *testing.T, dir string) {
			editFile(t, dir, "sendguard/risk.rego", `config.risk.block_threshold`, `config.risk.block_treshold`)
		}, []string{"undefined ref: data.sendguard.config.risk.block_treshold"}},
		{"broken schema", func(t *testing.T, dir string) {
			editFile(t, dir, "schemas/sendguard/config.json", `"type": "integer"`, `"type": "integr"`)
		}, []string{"schemas/sendguard/config.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shippedTree(t)
			tt.edit(t, dir)
			_, err := New(context.Background(), Options{Dir: dir})
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("New(%s) error = %v, want it to name %q", tt.name, err, w)
				}
			}
		})
	}
}

func move(t *testing.T, dir, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, to)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		t.Fatal(err)
	}
}

// TestProbesRefuse: data that matches its schema but changes what the
// probes answer, or probes that cannot be read, are refused, listing every
// probe that differs.
func TestProbesRefuse(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, dir string)
		opts Options
		want []string
	}{
		{"marketing allowed", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) {
				p := obj(m, "purposes")
				p["allowed"] = append(p["allowed"].([]any), "marketing")
			})
		}, Options{}, []string{`probe "marketing purpose": answered allowed (risk score 0), want message_purpose_not_allowed`}},
		{"threshold above the spam", func(t *testing.T, dir string) {
			editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "risk")["block_threshold"] = 95 })
		}, Options{}, []string{`probe "prize spam declared transactional": answered allowed (risk score 90), want policy_violation`}},
		{"every send needs a purpose", func(t *testing.T, dir string) {
			editFile(t, dir, "sendguard/decision.rego", `else := deny("message_purpose_required") if not purpose.known`, `else := deny("message_purpose_required") if true`)
		}, Options{}, []string{`probe "clean transactional receipt": answered message_purpose_required`, `probe "marketing purpose": answered message_purpose_required`, `probe "prize spam declared transactional": answered message_purpose_required`}},
		{"a scanner that sees nothing", func(*testing.T, string) {}, Options{Scan: func(string) Signals { return Signals{} }},
			[]string{`probe "prize spam declared transactional": answered allowed (risk score 0), want policy_violation`}},
		{"unknown probe key", func(t *testing.T, dir string) {
			editFile(t, dir, ProbesFile, `"want"`, `"wnat"`)
		}, Options{}, []string{`sendguard/probes.json: json: unknown field "wnat"`}},
		{"no probes", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ProbesFile), []byte(`{"probes": []}`), 0o644)
		}, Options{}, []string{"/probes: at least one probe is required"}},
		{"duplicate probe names", func(t *testing.T, dir string) {
			editFile(t, dir, ProbesFile, `"one-time code"`, `"clean transactional receipt"`)
		}, Options{}, []string{`/probes/1/name: "clean transactional receipt" must be non-empty and unique`}},
		{"probes missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, ProbesFile))
		}, Options{}, []string{"sendguard/probes.json is missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shippedTree(t)
			tt.edit(t, dir)
			opts := tt.opts
			opts.Dir = dir
			_, err := New(context.Background(), opts)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("New(%s) error = %v, want it to name %q", tt.name, err, w)
				}
			}
		})
	}
}

// TestShippedProbes: the embedded policies carry probes of the four kinds
// a broken policy tree gets wrong, and answer them as expected.
func TestShippedProbes(t *testing.T) {
	e := engine(t, Options{})
	var wants []string
	for _, p := range e.Probes() {
		wants = append(wants, p.Want)
	}
	for _, w := range []string{Allowed, "policy_violation", "message_purpose_not_allowed", "message_purpose_required"} {
		if !slices.Contains(wants, w) {
			t.Errorf("Probes() wants %q, want a probe answered %s", wants, w)
		}
	}
	// A copy of the shipped tree loads as it is.
	if _, err := New(context.Background(), Options{Dir: shippedTree(t)}); err != nil {
		t.Errorf("New(copy of the embedded tree) = %v", err)
	}
}

// TestReloadKeepsRunningRevision: a reload refused for its data or its
// probes leaves the previous policies deciding; a valid edit then applies.
func TestReloadKeepsRunningRevision(t *testing.T) {
	dir := shippedTree(t)
	e := engine(t, Options{Dir: dir, CacheEntries: -1}) // no memo: every Eval runs the policies
	ctx := context.Background()
	spam := Input{InstanceID: "i", Purpose: "transactional", PurposePresent: true, Phone: "+966501234567",
		Signals: risk.New(risk.Options{}).Scan("YOU HAVE WON A PRIZE!!!!!")}
	marketing := Input{InstanceID: "i", Purpose: "marketing", PurposePresent: true, Phone: "+966501234567"}
	newsletter := Input{InstanceID: "i", Purpose: "newsletter", PurposePresent: true, Phone: "+966501234567"}
	decide := func(in Input) string {
		t.Helper()
		d, err := e.Eval(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow {
			return Allowed
		}
		return d.Error
	}
	check := func(when string) {
		t.Helper()
		if got := decide(spam); got != "policy_violation" {
			t.Errorf("%s: Eval(spam) = %s, want policy_violation", when, got)
		}
		if got := decide(marketing); got != "message_purpose_not_allowed" {
			t.Errorf("%s: Eval(marketing) = %s, want message_purpose_not_allowed", when, got)
		}
	}
	check("before")

	editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "risk")["block_threshold"] = "70" })
	if err := e.Reload(ctx); err == nil || !strings.Contains(err.Error(), "/risk/block_threshold: expected integer, got string") {
		t.Errorf("Reload(block_threshold \"70\") = %v, want it to name /risk/block_threshold", err)
	}
	check("after a reload of a string threshold")

	editJSON(t, dir, dataFile, func(m map[string]any) {
		obj(m, "risk")["block_threshold"] = 70
		p := obj(m, "purposes")
		p["allowed"] = append(p["allowed"].([]any), "marketing")
	})
	if err := e.Reload(ctx); err == nil || !strings.Contains(err.Error(), `probe "marketing purpose"`) {
		t.Errorf("Reload(marketing allowed) = %v, want it to name the marketing probe", err)
	}
	check("after a reload that fails a probe")
	if got := decide(newsletter); got != "message_purpose_required" {
		t.Errorf("Eval(newsletter) = %s, want message_purpose_required", got)
	}

	// A valid edit applies: newsletter becomes a known, forbidden purpose.
	editJSON(t, dir, dataFile, func(m map[string]any) {
		p := obj(m, "purposes")
		p["allowed"] = slices.DeleteFunc(p["allowed"].([]any), func(v any) bool { return v == "marketing" })
		p["known"] = append(p["known"].([]any), "newsletter")
	})
	if err := e.Reload(ctx); err != nil {
		t.Fatalf("Reload(newsletter known) = %v", err)
	}
	check("after a valid reload")
	if got := decide(newsletter); got != "message_purpose_not_allowed" {
		t.Errorf("after a valid reload Eval(newsletter) = %s, want message_purpose_not_allowed", got)
	}
}

// TestInputSchemaMatchesInputValue: schemas/input.json, which type-checks
// the policies' references to input, describes exactly what InputValue
// builds, with and without a purpose.
func TestInputSchemaMatchesInputValue(t *testing.T) {
	raw, err := policies.FS.ReadFile("schemas/input.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	sig := risk.New(risk.Options{}).Scan("WIN a FREE prize!!! Click https://bit.ly/x 🎉🎉🎉🎉 order #1042 50% off")
	for _, in := range []Input{
		{InstanceID: "i", Plan: "starter", Phone: "+966501234567", Signals: sig},
		{InstanceID: "i", Plan: "starter", Paused: true, Purpose: " x ", PurposePresent: true, Phone: "+1", Suppressed: true, Signals: sig},
	} {
		doc, err := ast.JSON(InputValue(in))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := matchSchema(context.Background(), doc, schema)
		if err != nil || len(msgs) > 0 {
			t.Errorf("InputValue(%+v) against schemas/input.json: %v %q", in, err, msgs)
		}
	}
	// And the schema is strict: an extra field does not match.
	doc, _ := ast.JSON(InputValue(Input{}))
	doc.(map[string]any)["signals"].(map[string]any)["prize_claim"] = 1
	if msgs, _ := matchSchema(context.Background(), doc, schema); !slices.Contains(msgs, "/signals/prize_claim: unknown key (not in the schema; a typo?)") {
		t.Errorf("input with signals.prize_claim: %q, want an unknown key", msgs)
	}
}

// TestOPALoaderAgrees: `opa test policies` without --ignore loads the
// schemas and the probes as data too; they land beside the policies' data
// (data.schemas, data.sendguard.probes) and leave data.sendguard.config as
// sendguard loads it.
func TestOPALoaderAgrees(t *testing.T) {
	res, err := loader.NewFileLoader().Filtered([]string{"../../policies"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := load(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := res.Documents["sendguard"].(map[string]any)
	want, _ := json.Marshal(b.data["sendguard"].(map[string]any)["config"])
	got, _ := json.Marshal(sg["config"])
	if string(got) != string(want) {
		t.Errorf("opa's data.sendguard.config = %s, want %s", got, want)
	}
	for k := range sg {
		if k != "config" && k != "probes" {
			t.Errorf("opa's loader put data.sendguard.%s from a non-data file", k)
		}
	}
}
