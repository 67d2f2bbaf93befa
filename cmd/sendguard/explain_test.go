package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
)

// `sendguard check` names the segment behind a segment_lead, with its
// probabilities and n-grams; a message of one line has none to name.
func TestExplainNamesTheSegment(t *testing.T) {
	ctx := context.Background()
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(ctx, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := risk.New(risk.Options{Model: m})
	const ad = "Switch to our green plan and get your first month free!"
	tests := []struct {
		msg  string
		want bool
	}{
		{"Your electricity bill for October is AED 412.50, account 2231-8812. Please pay by 20 November through the app or at any branch to avoid a late fee.\n" + ad, true},
		{"Your electricity bill for October is AED 412.50, account 2231-8812. Please pay by 20 November.", false},
	}
	for _, tt := range tests {
		body, _ := json.Marshal(map[string]string{"message": tt.msg, "message_purpose": "transactional"})
		var out strings.Builder
		if err := explain(ctx, e, sc, body, &out); err != nil {
			t.Fatal(err)
		}
		named := strings.Contains(out.String(), "segment read alone") && strings.Contains(out.String(), `"`+ad+`"`)
		if named != tt.want || strings.Contains(out.String(), "segment read alone") != tt.want {
			t.Errorf("explain(%q) names a segment: %v, want %v\n%s", tt.msg, named, tt.want, out.String())
		}
	}
}
