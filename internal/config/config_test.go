package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
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

// signed is the least a config needs for its default inbound route.
const signed = "inbound: {signature: {secret_env: SENDGUARD_INBOUND_SECRET}}\n"

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(signed))
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
	if c.Admin.Pprof {
		t.Error("admin.pprof is on by default, want off")
	}
	if c, err := Parse([]byte(signed + "admin: {pprof: true}")); err != nil || !c.Admin.Pprof {
		t.Errorf("admin: {pprof: true} = %v, %v", c, err)
	}
	if e := c.Store.Embedded; e.Sync != "interval" || e.SyncInterval != 10*time.Millisecond {
		t.Errorf("store.embedded defaults = %+v, want sync interval every 10ms", e)
	}
	if !c.Reload.Watching() || c.Reload.WatchInterval != 5*time.Second {
		t.Errorf("reload = watch %v every %v, want on, 5s", c.Reload.Watching(), c.Reload.WatchInterval)
	}
	if c.Response.RateLimitHeaders {
		t.Error("response.ratelimit_headers is on by default, want off")
	}
	if on, err := Parse([]byte(signed + "\nresponse: {ratelimit_headers: true}\n")); err != nil || !on.Response.RateLimitHeaders {
		t.Errorf("response: {ratelimit_headers: true} = %+v, %v", on, err)
	}
	if _, err := Parse([]byte(signed + "\nresponse: {ratelimit_header: true}\n")); err == nil {
		t.Error("response: {ratelimit_header: true} (misspelt) parsed, want an unknown-key error")
	}
	if off, err := Parse([]byte(signed + "\nreload: {watch: false, watch_interval: 250ms}\n")); err != nil || off.Reload.Watching() || off.Reload.WatchInterval != 250*time.Millisecond {
		t.Errorf("reload: {watch: false, watch_interval: 250ms} = %+v, %v", off, err)
	}
	if got, err := c.AdminToken(func(k string) string { return map[string]string{"SENDGUARD_ADMIN_TOKEN": "t"}[k] }); got != "t" || err != nil {
		t.Errorf("AdminToken from env = %q, %v", got, err)
	}
	if got, err := c.AdminToken(func(string) string { return "" }); got != "" || err != nil {
		t.Errorf("AdminToken with none set = %q, %v; want \"\" (the admin API closed)", got, err)
	}
}

// TestAdminTokenFromEnvironment: a token read from the environment that
// no client could present is an error naming the variable.
func TestAdminTokenFromEnvironment(t *testing.T) {
	c, err := Parse([]byte(signed + "admin: {token_env: ADMIN_SECRET}"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"s3cret\n", "s3cret\r\n", " s3cret", "s3cret ", "s3 cret", "s3\tcret", "sécret", strings.Repeat("x", 513)} {
		got, err := c.AdminToken(func(k string) string { return map[string]string{"ADMIN_SECRET": tok}[k] })
		if err == nil || !strings.Contains(err.Error(), "ADMIN_SECRET") {
			t.Errorf("AdminToken(%q) = %q, %v; want an error naming ADMIN_SECRET", tok, got, err)
		}
	}
	if got, err := c.AdminToken(func(k string) string { return map[string]string{"ADMIN_SECRET": "s3cret-_.~+/="}[k] }); err != nil || got != "s3cret-_.~+/=" {
		t.Errorf("AdminToken(visible ASCII) = %q, %v", got, err)
	}
}

// TestConsoleToken: the console's read-only token comes only from the
// variable admin.console_token_env names (default SENDGUARD_CONSOLE_TOKEN);
// one no sign-in could carry, or equal to the admin token, is an error
// naming the variable.
func TestConsoleToken(t *testing.T) {
	c, err := Parse([]byte(signed + "admin: {token_env: ADMIN_SECRET}"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.ConsoleTokenEnv != "SENDGUARD_CONSOLE_TOKEN" || c.Admin.ConsoleAuditFile != "" {
		t.Errorf("admin console defaults = %q, %q; want SENDGUARD_CONSOLE_TOKEN and no audit file", c.Admin.ConsoleTokenEnv, c.Admin.ConsoleAuditFile)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"unset", map[string]string{"ADMIN_SECRET": "a"}, "", ""},
		{"set", map[string]string{"ADMIN_SECRET": "a", "SENDGUARD_CONSOLE_TOKEN": "ro-token"}, "ro-token", ""},
		{"without an admin token", map[string]string{"SENDGUARD_CONSOLE_TOKEN": "ro-token"}, "ro-token", ""},
		{"trailing newline", map[string]string{"SENDGUARD_CONSOLE_TOKEN": "ro-token\n"}, "", "SENDGUARD_CONSOLE_TOKEN"},
		{"not ASCII", map[string]string{"SENDGUARD_CONSOLE_TOKEN": "jeton-réservé"}, "", "SENDGUARD_CONSOLE_TOKEN"},
		{"the admin token", map[string]string{"ADMIN_SECRET": "same", "SENDGUARD_CONSOLE_TOKEN": "same"}, "", "the read-only token must differ"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.ConsoleToken(env(tc.env))
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("ConsoleToken(%v) = %q, %v; want %q, error with %q", tc.env, got, err, tc.want, tc.wantErr)
			}
		})
	}
	named, err := Parse([]byte(signed + "admin: {console_token_env: RO, console_audit_file: /var/lib/sendguard/audit.jsonl}"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := named.ConsoleToken(env(map[string]string{"RO": "r"})); got != "r" || err != nil {
		t.Errorf("ConsoleToken with console_token_env: RO = %q, %v; want r", got, err)
	}
	if named.Admin.ConsoleAuditFile != "/var/lib/sendguard/audit.jsonl" {
		t.Errorf("admin.console_audit_file = %q", named.Admin.ConsoleAuditFile)
	}
}

// TestLoadRefusesValuesThatCannotWork: a value that can never work is
// refused when the file is loaded, with a message naming the key, instead
// of being found out (or not) at run time.
func TestLoadRefusesValuesThatCannotWork(t *testing.T) {
	const acct = "accounts: [{id: a}]\n"
	tests := []struct {
		yaml, want string
	}{
		{"abuse: {auto_pause: {window: -1h}}", "abuse.auto_pause.window -1h0m0s: must be positive"},
		{"reload: {watch_interval: 10ms}", "reload.watch_interval 10ms: must be between 100ms and 1h"},
		{"reload: {watch_interval: -5s}", "reload.watch_interval -5s"},
		{"reload: {watch_interval: 2h}", "reload.watch_interval 2h0m0s"},
		{"abuse: {auto_pause: {violations: 3, window: -5m}}", "abuse.auto_pause.window"},
		{"abuse: {auto_pause: {violations: -2}}", "abuse.auto_pause.violations -2"},
		{"admin: {token: \" t0ken\"}", "admin.token: has whitespace"},
		{"admin: {token: \"t0ken \"}", "admin.token: has whitespace"},
		{"admin: {token: \"t0 ken\"}", "admin.token: has whitespace"},
		{"admin: {token: \"t0ken\\n\"}", "admin.token: has whitespace"},
		{"admin: {token: \"tökén\"}", "admin.token: a token is 1 to 512 visible ASCII characters"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: -1, burst: 1}}}", "plans.p.throttle"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: .nan, burst: 1}}}", "plans.p.throttle"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: .inf, burst: 1}}}", "plans.p.throttle"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 0}}}", "plans.p.throttle"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 1}, slow_lane: {rate: -0.5, burst: 5}}}", "plans.p.slow_lane"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 1}, slow_lane: {rate: .nan, burst: 5}}}", "plans.p.slow_lane"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 1}, slow_lane: {rate: 0.5}}}", "plans.p.slow_lane"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 1}, abuse: {fanout_window: -10m}}}", "plans.p.abuse.fanout_window -10m0s"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 1}, abuse: {fanout_throttle: -1}}}", "plans.p.abuse: fanout_throttle -1"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 1}, abuse: {fanout_throttle: 50, fanout_block: 10}}}", "fanout_block 10 at least fanout_throttle"},
		{"plans: {p: {daily: 1, monthly: 5, throttle: {rate: 1, burst: 1}, abuse: {pair_per_minute: -3}}}", "plans.p.abuse.pair_per_minute -3"},
		{"plans: {p: {daily: 10, monthly: 5, throttle: {rate: 1, burst: 1}}}", "plans.p: daily 10 exceeds monthly 5"},
		{"plans: {starter: {daily: -1, monthly: 5, throttle: {rate: 1, burst: 1}}}", "plans.starter: daily and monthly must be positive"},
		{acct + "instances: [{id: i, account: a, plan: gold}]", `instances[0] (i): unknown plan "gold"`},
		{acct + "instances: [{id: i, account: b, plan: starter}]", `instances[0] (i): unknown account "b"`},
		{acct + "instances: [{id: i, account: a, plan: starter}, {id: i, account: a, plan: starter}]", `instances[1]: duplicate id "i"`},
		{"accounts: [{id: a, keys: [{id: k, sha256: " + strings.Repeat("a", 64) + "}]}, {id: b, keys: [{id: k, sha256: " + strings.Repeat("b", 64) + "}]}]", `accounts[1].keys[0]: duplicate key id "k" (also a key of account "a")`},
		{"accounts: [{id: a, keys: [{id: k, sha256: " + strings.Repeat("g", 64) + "}]}]", "accounts[0].keys[0]: sha256 must be 64 hex digits"},
		{"accounts: [{id: a}, {id: a}]", `accounts[1]: duplicate id "a"`},
		{"quota: {time_zone: Europe/Atlantis}", "quota.time_zone \"Europe/Atlantis\""},
		{"quota: {time_zone: Local}", "quota.time_zone \"Local\": name an IANA zone"},
		{"request: {max_body_bytes: -1}", "request.max_body_bytes -1: must be from 256"},
		{"request: {max_body_bytes: 8388608}", "request.max_body_bytes 8388608: must be from 256 to 4128768"},
		{"request: {max_message_runes: -5}", "request.max_message_runes -5"},
		{"request: {max_json_depth: -1}", "request.max_json_depth -1"},
		{"events: {retry_for: -72h}", "events.retry_for -72h0m0s: must be at least 24h"},
		{"events: {retry_for: 1h}", "events.retry_for 1h0m0s: must be at least 24h"},
		{"store: {embedded: {sync: everysec}}", `store.embedded.sync "everysec": must be always or interval`},
		{"store: {embedded: {sync: Always}}", `store.embedded.sync "Always": must be always or interval`},
		{"store: {embedded: {sync_interval: -10ms}}", "store.embedded.sync_interval -10ms: must be from 1ms to 1s"},
		{"store: {embedded: {sync_interval: 100us}}", "store.embedded.sync_interval 100µs: must be from 1ms to 1s"},
		{"store: {embedded: {sync_interval: 2s}}", "store.embedded.sync_interval 2s: must be from 1ms to 1s"},
		{"store: {embedded: {fsync: always}}", "field fsync not found"},
		{"store: {type: redis, redis: {addr: 'localhost:6379', timeout: -1s}}", "store.redis.timeout -1s"},
		{"store: {type: redis, redis: {addr: localhost}}", `store.redis.addr "localhost": must be host:port`},
		{"store: {type: redis, redis: {addr: 'localhost:6379', db: -1}}", "store.redis.db -1"},
		{"store: {type: redis}", "store.redis: set exactly one of addr (one server), addrs (Redis Cluster seeds) or sentinel (master_name and addrs)"},
		{"store: {type: redis, redis: {addr: 'r:6379', addrs: ['a:7000']}}", "store.redis: set exactly one of addr"},
		{"store: {type: redis, redis: {addrs: ['a:7000'], sentinel: {master_name: m, addrs: ['s:26379']}}}", "store.redis: set exactly one of addr"},
		{"store: {type: redis, redis: {addrs: ['a:7000', 'b']}}", `store.redis.addrs[1] "b": must be host:port`},
		{"store: {type: redis, redis: {addrs: ['a:7000'], db: 2}}", "store.redis.db 2: a Redis Cluster has only db 0"},
		{"store: {type: redis, redis: {sentinel: {addrs: ['s:26379']}}}", "store.redis.sentinel.master_name is required"},
		{"store: {type: redis, redis: {sentinel: {master_name: m}}}", "store.redis.sentinel.addrs is required"},
		{"store: {type: redis, redis: {sentinel: {master_name: m, addrs: ['s']}}}", `store.redis.sentinel.addrs[0] "s": must be host:port`},
		{"store: {type: redis, redis: {addr: 'r:6379', wait_replicas: -1}}", "store.redis.wait_replicas -1: must not be negative"},
		{"store: {type: redis, redis: {addr: 'r:6379', tls: {cafile: x}}}", "field cafile not found"},
		{acct + "instances: [{id: '}shop', account: a, plan: starter}]", `instances[0]: id "}shop": must not begin with }`},
		{"response: {failure_statuses: [500, 200]}", "response.failure_statuses[1] 200: must be 500 to 599"},
		{"response: {failure_statuses: [429]}", "response.failure_statuses[0] 429: must be 500 to 599"},
		{"response: {failure_statuses: [600]}", "response.failure_statuses[0] 600: must be 500 to 599"},
		{"listen: {grpc: 9191}", `listen.grpc "9191": must be host:port`},
		{"listen: {admin: 'localhost:'}", `listen.admin "localhost:": must be host:port`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sendguard.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%q) error = %v, want it to name %q", tc.yaml, err, tc.want)
			}
		})
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
		{"clause threshold over 1", "optout: {model: {clause_threshold: 1.01}}", "optout.model.clause_threshold"},
		{"NUL in an instance id", "accounts: [{id: a}]\ninstances: [{id: \"\\0shadow\\0i\", account: a, plan: starter}]", "control characters"},
		{"space in an instance id", "accounts: [{id: a}]\ninstances: [{id: 'inst 1', account: a, plan: starter}]", "spaces"},
		{"slash in an account id", "accounts: [{id: a/b}]", "slashes"},
		{"newline in a key id", "accounts: [{id: a, keys: [{id: \"k\\nx\", sha256: '" + strings.Repeat("ab", 32) + "'}]}]", "control characters"},
		{"long instance id", "accounts: [{id: a}]\ninstances: [{id: " + strings.Repeat("i", 129) + ", account: a, plan: starter}]", "128 bytes"},
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

// TestEmbeddedSyncSettings: both modes and an interval within bounds load
// as written.
func TestEmbeddedSyncSettings(t *testing.T) {
	for _, tc := range []struct {
		yaml  string
		sync  string
		every time.Duration
	}{
		{"store: {embedded: {sync: always}}", "always", 10 * time.Millisecond},
		{"store: {embedded: {sync: interval, sync_interval: 1ms}}", "interval", time.Millisecond},
		{"store: {embedded: {sync_interval: 1s}}", "interval", time.Second},
	} {
		c, err := Parse([]byte(signed + tc.yaml))
		if err != nil {
			t.Errorf("Parse(%q) = %v", tc.yaml, err)
			continue
		}
		if e := c.Store.Embedded; e.Sync != tc.sync || e.SyncInterval != tc.every {
			t.Errorf("Parse(%q) = %+v, want sync %s every %s", tc.yaml, e, tc.sync, tc.every)
		}
	}
}

func TestModelSettings(t *testing.T) {
	c, err := Parse([]byte("optout: {model: {path: in.model, opt_out_threshold: 0.4, opt_in_threshold: 0.9}}\nrisk: {model: {path: out.model}}\ninbound: {routes: []}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.OptOut.Model; m.Path != "in.model" || m.OptOutThreshold != 0.4 || m.OptInThreshold != 0.9 || c.Risk.Model.Path != "out.model" {
		t.Errorf("Parse(model settings) = %+v, %+v", c.OptOut.Model, c.Risk.Model)
	}
}

func TestPlansMergeWithDefaults(t *testing.T) {
	c, err := Parse([]byte(signed + "plans:\n  starter: {daily: 7, monthly: 70, throttle: {rate: 1, burst: 1}}\n  custom: {daily: 1, monthly: 2, throttle: {rate: 1, burst: 1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Plans["starter"].Daily != 7 || c.Plans["custom"].Monthly != 2 || c.Plans["scale"].Daily != 1500 || c.Plans["growth"].Monthly != 10000 {
		t.Errorf("plans = %+v", c.Plans)
	}
}

// TestInboundSignatureRequired: the observed inbound webhook records
// opt-outs and opt-ins, so a config that observes it (the default route)
// without a signature secret is refused, naming the key and both ways out;
// inbound.unsigned: true and inbound.routes: [] are the explicit opt-outs.
func TestInboundSignatureRequired(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // in the error; nil: valid
	}{
		{"empty file", "", []string{"inbound.signature", "secret_env", "inbound.unsigned: true", "inbound.routes: []"}},
		{"routes, no secret", "inbound: {routes: [{method: POST, path: /hooks/in}]}", []string{"inbound.signature"}},
		{"header only", "inbound: {signature: {header: X-Signature}}", []string{"inbound.signature"}},
		{"secret_env", signed, nil},
		{"secret", "inbound: {signature: {secret: s3cret}}", nil},
		{"secrets_env only", "inbound: {signature: {secrets_env: [A, B]}}", nil},
		{"unsigned", "inbound: {unsigned: true}", nil},
		{"no routes", "inbound: {routes: []}", nil},
		{"unsigned and a secret", "inbound: {unsigned: true, signature: {secret_env: S}}", []string{"inbound.unsigned"}},
		{"bad header", "inbound: {signature: {secret_env: S, header: 'X Sig'}}", []string{"inbound.signature.header"}},
		{"pseudo header", "inbound: {signature: {secret_env: S, header: ':path'}}", []string{"inbound.signature.header"}},
		{"secret with newline", "inbound: {signature: {secret: \"s3cret\\n\"}}", []string{"inbound.signature.secret"}},
		{"variable named twice", "inbound: {signature: {secret_env: S, secrets_env: [S]}}", []string{"named twice"}},
		{"empty variable name", "inbound: {signature: {secrets_env: ['']}}", []string{"secrets_env[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want valid", tc.yaml, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tc.yaml, c.Inbound)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) = %v, want it to name %q", tc.yaml, err, w)
				}
			}
		})
	}
}

// TestInboundSignatureDefaults: Meta's scheme by default; routes: [] stays
// empty (nothing observed) instead of taking the default route.
func TestInboundSignatureDefaults(t *testing.T) {
	c, err := Parse([]byte(signed))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Inbound.Signature
	if s.Header != "X-Hub-Signature-256" || s.Prefix == nil || *s.Prefix != "sha256=" || len(c.Inbound.Routes) != 1 || c.Inbound.Routes[0].Path != "/webhooks/inbound" {
		t.Errorf("inbound defaults = %+v (prefix %v)", c.Inbound, s.Prefix)
	}
	c, err = Parse([]byte("inbound: {routes: [], signature: {secret: x, prefix: ''}}"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Inbound.Routes) != 0 || *c.Inbound.Signature.Prefix != "" {
		t.Errorf("routes: [] and prefix: '' = %+v, %q; want no routes and no prefix", c.Inbound.Routes, *c.Inbound.Signature.Prefix)
	}
}

// TestInboundSecrets: every named secret, file first, then secret_env,
// then secrets_env in order (rotation); an empty variable or a secret with
// a trailing newline is an error naming where it came from.
func TestInboundSecrets(t *testing.T) {
	env := map[string]string{"CUR": "current", "NEXT": "next", "EMPTY": "", "NL": "secret\n"}
	getenv := func(k string) string { return env[k] }
	s := InboundSignature{Secret: "file", SecretEnv: "CUR", SecretsEnv: []string{"NEXT"}}
	got, err := s.Secrets(getenv)
	if err != nil || len(got) != 3 || string(got[0]) != "file" || string(got[1]) != "current" || string(got[2]) != "next" {
		t.Errorf("Secrets(%+v) = %q, %v; want file, current, next", s, got, err)
	}
	for _, tc := range []struct {
		s    InboundSignature
		want string
	}{
		{InboundSignature{SecretEnv: "EMPTY"}, "EMPTY"},
		{InboundSignature{SecretEnv: "UNSET"}, "UNSET"},
		{InboundSignature{SecretEnv: "CUR", SecretsEnv: []string{"NL"}}, "NL"},
	} {
		if got, err := tc.s.Secrets(getenv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Secrets(%+v) = %q, %v; want an error naming %s", tc.s, got, err, tc.want)
		}
	}
}

func TestResponseFailures(t *testing.T) {
	off := false
	tests := []struct {
		name   string
		r      Response
		on     bool
		status []int
	}{
		{"absent: the defaults", Response{}, true, []int{500, 502, 503, 504}},
		{"named", Response{FailureStatuses: []int{500, 507}}, true, []int{500, 507}},
		{"empty: none", Response{FailureStatuses: []int{}}, true, []int{}},
		{"off", Response{ReplaceFailures: &off}, false, []int{500, 502, 503, 504}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			on, got := tc.r.Failures()
			if on != tc.on || !slices.Equal(got, tc.status) {
				t.Errorf("Failures() = %v, %v, want %v, %v", on, got, tc.on, tc.status)
			}
		})
	}
}

// TestLoadRedisModes: a Redis Cluster's seeds, a Sentinel group and TLS
// settings load as written.
func TestLoadRedisModes(t *testing.T) {
	tests := []struct {
		yaml string
		want RedisStore
	}{
		{"store: {type: redis, redis: {addrs: ['r-0:6379', 'r-1:6379'], wait_replicas: 1, tls: {ca_file: /etc/ca.pem, server_name: redis.internal}}}",
			RedisStore{Addrs: []string{"r-0:6379", "r-1:6379"}, WaitReplicas: 1, TLS: RedisTLS{CAFile: "/etc/ca.pem", ServerName: "redis.internal"}}},
		{"store: {type: redis, redis: {sentinel: {master_name: mymaster, addrs: ['s-0:26379', 's-1:26379', 's-2:26379'], username: sg, password_env: SENTINEL_PW}, db: 3}}",
			RedisStore{DB: 3, Sentinel: RedisSentinel{MasterName: "mymaster", Addrs: []string{"s-0:26379", "s-1:26379", "s-2:26379"}, Username: "sg", PasswordEnv: "SENTINEL_PW"}}},
		{"store: {type: redis, redis: {addr: 'r:6380', tls: {enabled: true}}}", RedisStore{Addr: "r:6380", TLS: RedisTLS{Enabled: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sendguard.yaml")
			if err := os.WriteFile(p, []byte("inbound: {routes: []}\n"+tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Store.Redis
			got.PasswordEnv, got.Prefix, got.Timeout = "", "", 0 // defaults, checked elsewhere
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Load(%q).Store.Redis = %+v, want %+v", tc.yaml, got, tc.want)
			}
			if !got.TLS.On() != (tc.want.TLS == RedisTLS{}) {
				t.Errorf("Load(%q).Store.Redis.TLS.On() = %v", tc.yaml, got.TLS.On())
			}
		})
	}
}
