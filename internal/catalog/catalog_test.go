package catalog

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog/seedfile"
)

// seed reads testdata/seed.txt, a verbatim copy of the source contract.
func seed(t *testing.T) (table map[Code]Entry, examples map[Code][]byte) {
	t.Helper()
	rows, ex, err := seedfile.Read()
	if err != nil {
		t.Fatal(err)
	}
	table = map[Code]Entry{}
	for code, r := range rows {
		table[Code(code)] = Entry{Code: Code(code), Status: r.Status, Message: r.Message}
	}
	examples = map[Code][]byte{}
	for code, b := range ex {
		examples[Code(code)] = b
	}
	return table, examples
}

func TestCatalogMatchesSeedTable(t *testing.T) {
	table, _ := seed(t)
	if len(table) != 14 {
		t.Fatalf("parsed %d table rows from the seed, want 14", len(table))
	}
	for code, want := range table {
		got, ok := Lookup(code)
		if !ok {
			t.Errorf("Lookup(%q) not found", code)
			continue
		}
		if got.Status != want.Status || got.Message != want.Message {
			t.Errorf("Lookup(%q) = %d %q, want %d %q", code, got.Status, got.Message, want.Status, want.Message)
		}
	}
	// sendguard's own codes, in the seed's shape but not in its table.
	own := []Code{PolicyCheckUnavailable, InvalidRequestPath, InvalidRequestMethod, InvalidRequestQuery}
	for _, c := range own {
		if _, inSeed := table[c]; inSeed {
			t.Errorf("%q is in the seed: not sendguard's own", c)
		}
		if e, ok := Lookup(c); !ok || e.Action != ActionBlock || e.Risk != 0 {
			t.Errorf("Lookup(%q) = %+v, %v; want a block with risk 0", c, e, ok)
		}
	}
	if len(All()) != len(table)+len(own) {
		t.Errorf("catalogue has %d entries, want the seed's %d plus %v", len(All()), len(table), own)
	}
}

func TestBodyMatchesSeedExamples(t *testing.T) {
	_, examples := seed(t)
	if len(examples) != 8 {
		t.Fatalf("parsed %d examples from the seed, want 8", len(examples))
	}
	for code, want := range examples {
		var d Details
		var probe struct {
			Details struct {
				Limit *int64 `json:"limit"`
				Used  *int64 `json:"used"`
			} `json:"details"`
		}
		if err := json.Unmarshal(want, &probe); err != nil {
			t.Fatal(err)
		}
		if probe.Details.Limit != nil {
			d = Details{Quota: true, Limit: *probe.Details.Limit, Used: *probe.Details.Used}
		}
		if got := Body(code, d); !bytes.Equal(got, want) {
			t.Errorf("Body(%q) =\n%s\nwant\n%s", code, got, want)
		}
	}
}

func TestBodyIsValidJSONForEveryCode(t *testing.T) {
	for _, e := range All() {
		risk := 42
		b := Body(e.Code, Details{RiskScore: &risk, Fields: []Field{{"phone", "invalid_phone_number"}, {"message", "required"}}})
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("Body(%q) is not JSON: %v\n%s", e.Code, err, b)
			continue
		}
		if v["error"] != string(e.Code) || v["message"] != e.Message || v["success"] != false {
			t.Errorf("Body(%q) = %s", e.Code, b)
		}
		det := v["details"].(map[string]any)
		if det["risk_score"] != float64(42) || det["action"] != e.Action {
			t.Errorf("Body(%q) details = %v", e.Code, det)
		}
	}
}

func TestBodyUnknownCodePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Body(unknown) did not panic")
		}
	}()
	Body("nope", Details{})
}
