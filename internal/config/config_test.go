package config

import (
	"os"
	"strings"
	"testing"
)

func TestParseDemoConfig(t *testing.T) {
	c, err := Load("../../cmd/devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Accounts) != 2 || len(c.Instances) != 3 || c.Plans["starter"].Daily != 100 {
		t.Errorf("Load(demo) = %+v", c)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int64{"starter": {100, 2000}, "growth": {500, 10000}, "scale": {1500, 30000}}
	for name, lim := range want {
		p := c.Plans[name]
		if p.Daily != lim[0] || p.Monthly != lim[1] || p.Throttle.Rate <= 0 || p.Throttle.Burst < 1 {
			t.Errorf("default plan %s = %+v, want %d/%d", name, p, lim[0], lim[1])
		}
	}
	if c.Quota.TimeZone != "UTC" || c.Request.MaxBodyBytes != 65536 || len(c.SendRoutes) != 1 || c.SendRoutes[0].Path != "/api/send-message" {
		t.Errorf("defaults = %+v", c)
	}
	if got := c.AdminToken(func(k string) string { return map[string]string{"SENDGUARD_ADMIN_TOKEN": "t"}[k] }); got != "t" {
		t.Errorf("AdminToken from env = %q", got)
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listen: {grpcc: x}", "field grpcc not found"},
		{"bad zone", "quota: {time_zone: Mars/Olympus}", "quota.time_zone"},
		{"bad hash", "accounts: [{id: a, keys: [{sha256: abc}]}]", "64 hex digits"},
		{"dangling account", "accounts: [{id: a}]\ninstances: [{id: i, account: b, plan: starter}]", `unknown account "b"`},
		{"dangling plan", "accounts: [{id: a}]\ninstances: [{id: i, account: a, plan: gold}]", `unknown plan "gold"`},
		{"duplicate instance", "accounts: [{id: a}]\ninstances: [{id: i, account: a, plan: starter}, {id: i, account: a, plan: starter}]", "duplicate id"},
		{"daily over monthly", "plans: {p: {daily: 10, monthly: 5, throttle: {rate: 1, burst: 1}}}", "exceeds monthly"},
		{"no throttle", "plans: {p: {daily: 1, monthly: 5}}", "throttle"},
		{"suppression of unknown instance", "suppressions: [{instance: x, phone: '+1'}]", "unknown instance"},
		{"opt-out threshold over 1", "optout: {model: {opt_out_threshold: 1.5}}", "optout.model.opt_out_threshold"},
		{"negative opt-in threshold", "optout: {model: {opt_in_threshold: -0.1}}", "optout.model.opt_in_threshold"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error = %v, want it to mention %q", tc.yaml, err, tc.want)
			}
		})
	}
}

// TestREADMEExample loads the complete example of README.md#configuration,
// so the documentation cannot drift from what sendguard accepts.
func TestREADMEExample(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "## Configuration")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in README's Configuration section")
	}
	block, _, _ = strings.Cut(block, "```")
	c, err := Parse([]byte(block))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if len(c.Accounts) != 1 || len(c.Instances) != 1 || len(c.Suppressions) != 1 || c.Plans["growth"].Daily != 500 || c.Request.MaxBodyBytes != 65536 {
		t.Errorf("README example parsed as %+v", c)
	}
	if sc := c.Plans["scale"]; sc.Abuse.FanOutThrottle != 250 || sc.Abuse.FanOutBlock != 1000 || sc.SlowLane.Burst != 5 ||
		len(c.Risk.Extra.Promo) != 1 || len(c.Risk.Shorteners) != 1 || c.Abuse.AutoPause.Violations != 10 || len(c.OptOut.Extra.Fillers) != 1 {
		t.Errorf("README example: plans %+v, risk %+v, abuse %+v", c.Plans, c.Risk, c.Abuse)
	}
}

func TestModelSettings(t *testing.T) {
	c, err := Parse([]byte("optout: {model: {path: in.model, opt_out_threshold: 0.4, opt_in_threshold: 0.9}}\nrisk: {model: {path: out.model}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.OptOut.Model; m.Path != "in.model" || m.OptOutThreshold != 0.4 || m.OptInThreshold != 0.9 || c.Risk.Model.Path != "out.model" {
		t.Errorf("Parse(model settings) = %+v, %+v", c.OptOut.Model, c.Risk.Model)
	}
}

func TestPlansMergeWithDefaults(t *testing.T) {
	c, err := Parse([]byte("plans:\n  starter: {daily: 7, monthly: 70, throttle: {rate: 1, burst: 1}}\n  custom: {daily: 1, monthly: 2, throttle: {rate: 1, burst: 1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Plans["starter"].Daily != 7 || c.Plans["custom"].Monthly != 2 || c.Plans["scale"].Daily != 1500 || c.Plans["growth"].Monthly != 10000 {
		t.Errorf("plans = %+v", c.Plans)
	}
}
