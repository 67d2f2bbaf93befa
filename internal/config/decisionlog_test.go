package config

import (
	"strings"
	"testing"
	"time"
)

// TestDecisionLogAndShadow: the decision_log keys and shadow mode parse
// with their defaults, the revision names the bytes, and values that cannot
// work are refused with the key named.
func TestDecisionLogAndShadow(t *testing.T) {
	c, err := Parse([]byte("shadow: true\ninbound: {routes: []}\naccounts: [{id: a}]\ninstances: [{id: i, account: a, plan: starter, shadow: true}]\ndecision_log: {sink: file, file: {path: /tmp/d.log}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	dl := c.DecisionLog
	if !c.Shadow || !c.Instances[0].Shadow || dl.Phone != "hmac" || dl.PhoneKeyEnv != "SENDGUARD_DECISION_LOG_KEY" || dl.Message ||
		dl.Buffer != 8192 || dl.File.MaxSizeMB != 100 || dl.File.Keep != 5 || dl.HTTP.Batch != 500 || dl.HTTP.Interval != 5*time.Second {
		t.Errorf("Parse = shadow %v/%v, decision_log %+v", c.Shadow, c.Instances[0].Shadow, dl)
	}
	if len(c.Revision) != 12 {
		t.Errorf("Revision = %q, want 12 hex digits", c.Revision)
	}
	if c2, _ := Parse([]byte("shadow: false\ninbound: {routes: []}\n")); c2 == nil || c2.Revision == c.Revision {
		t.Errorf("two different files share the revision %q", c.Revision)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"decision_log: {sink: kafka}", `decision_log.sink "kafka"`},
		{"decision_log: {sink: file}", "decision_log.file.path: required"},
		{"decision_log: {sink: http}", "decision_log.http.url"},
		{"decision_log: {sink: http, http: {url: 'ftp://x/logs'}}", "decision_log.http.url"},
		{"decision_log: {sink: stdout, phone: sha1}", `decision_log.phone "sha1"`},
		{"decision_log: {sink: stdout, buffer: -1}", "decision_log.buffer -1"},
		{"decision_log: {sink: stdout, file: {keep: -2}}", "decision_log.file.keep -2"},
		{"decision_log: {sink: stdout, messages: true}", "field messages not found"},
		{"instances: [{id: i, account: a, plan: starter, shadows: true}]", "field shadows not found"},
	} {
		if _, err := Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to name %q", tc.yaml, err, tc.want)
		}
	}
}
