// Package config reads and validates sendguard's one YAML configuration file.
//
// Load checks everything before anything is built: unknown keys, duplicate
// ids, dangling references, malformed key hashes and impossible limits are
// all reported at once, so `sendguard config check` can gate a deploy. main
// reads the result and fills each package's own Options.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"

	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/optout"
	"github.com/sendguard/sendguard/internal/risk"
)

// Config is the whole file.
type Config struct {
	Listen       Listen          `yaml:"listen"`
	Admin        Admin           `yaml:"admin"`
	Store        Store           `yaml:"store"`
	Quota        Quota           `yaml:"quota"`
	Request      Request         `yaml:"request"`
	SendRoutes   []Route         `yaml:"send_routes"`
	Plans        map[string]Plan `yaml:"plans"`
	Accounts     []Account       `yaml:"accounts"`
	Instances    []Instance      `yaml:"instances"`
	Suppressions []Suppression   `yaml:"suppressions"`
	Inbound      Inbound         `yaml:"inbound"`
	OptOut       OptOut          `yaml:"optout"`
	Events       Events          `yaml:"events"`
	Abuse        Abuse           `yaml:"abuse"`
	Risk         Risk            `yaml:"risk"`
	Reload       Reload          `yaml:"reload"`
	// Shadow decides every send as usual but forwards would-be denials
	// (see decision.Options.Shadow).
	Shadow      bool        `yaml:"shadow"`
	DecisionLog DecisionLog `yaml:"decision_log"`
	Tracing     Tracing     `yaml:"tracing"`

	// Revision names the file's content: the first 12 hex digits of the
	// SHA-256 of the bytes Parse read. Set by Parse.
	Revision string   `yaml:"-"`
	Response Response `yaml:"response"`
}

// Response configures what sendguard adds to the client's response.
type Response struct {
	// RateLimitHeaders: an allowed send's response also carries the IETF
	// RateLimit-Policy and RateLimit fields of the instance's tightest
	// limit (draft-ietf-httpapi-ratelimit-headers), as denials by a quota
	// always do. Default false: allowed responses are unchanged.
	RateLimitHeaders bool `yaml:"ratelimit_headers"`
	// FailureStatuses are the sender's statuses that mean "not delivered"
	// on an allowed send: sendguard's ext_proc service (envoy/sidecar.yaml)
	// replaces such a response with the documented 502
	// gateway_send_failed JSON, keeping the decision id, and logs and
	// counts the sender's status. Each is 500 to 599 (the sidecar asks
	// sendguard about a 5xx only). Default (absent):
	// 500, 502, 503, 504. An empty list replaces nothing. A change takes
	// a restart.
	FailureStatuses []int `yaml:"failure_statuses"`
	// ReplaceFailures: false leaves the ext_proc service unregistered, so
	// Envoy's ext_proc filter fails open (failure_mode_allow) and every
	// response passes unchanged. Default true. A change takes a restart.
	ReplaceFailures *bool `yaml:"replace_failures"`
}

// DefaultFailureStatuses are Response.FailureStatuses when the config
// names none.
var DefaultFailureStatuses = []int{500, 502, 503, 504}

// Failures reports whether failed sends are replaced and the statuses that
// count as failed (the defaults when the config names none).
func (r Response) Failures() (bool, []int) {
	on := r.ReplaceFailures == nil || *r.ReplaceFailures
	if r.FailureStatuses == nil {
		return on, append([]int(nil), DefaultFailureStatuses...)
	}
	return on, append([]int(nil), r.FailureStatuses...)
}

// Reload is how `sendguard serve` notices edits to its config file and its
// --policies directory besides SIGHUP: it polls both (a mounted ConfigMap's
// atomic ..data swap included) and reloads when either changes, exactly as
// SIGHUP does.
type Reload struct {
	Watch         *bool         `yaml:"watch"`          // default true
	WatchInterval time.Duration `yaml:"watch_interval"` // default 5s; 100ms to 1h
}

// Watching reports whether serve polls for changes.
func (r Reload) Watching() bool { return r.Watch == nil || *r.Watch }

// Risk extends the content scanner's built-in vocabulary (internal/risk's
// vocab.json) and URL shortener list. Weights and thresholds are Rego data
// (policies/sendguard/data.json), not here.
type Risk struct {
	Extra      risk.Vocabulary `yaml:"extra"`
	Shorteners []string        `yaml:"shorteners"` // host names added to the built-in list
	Model      ModelFile       `yaml:"model"`      // the outbound content model; weights are Rego data
}

// ModelFile names a model file (`sendguard model train --out`) to use
// instead of the embedded one.
type ModelFile struct {
	Path string `yaml:"path"` // empty: the embedded model
}

// Inbound configures the observed inbound-message webhook. With routes
// (the default), sendguard records what it observes only from requests
// whose Signature verifies, so Signature must name a secret, unless
// Unsigned is set; routes: [] observes nothing.
type Inbound struct {
	Routes    []Route          `yaml:"routes"` // default POST /webhooks/inbound; [] observes nothing
	Fields    InboundFields    `yaml:"fields"` // dot paths into the payload
	Signature InboundSignature `yaml:"signature"`
	// Unsigned records inbound requests without any signature, for trials:
	// anyone who can reach the sidecar can then forge opt-outs and opt-ins.
	Unsigned bool `yaml:"unsigned"`
}

// InboundSignature is how the webhook's sender signs each request: Prefix
// and the hex HMAC-SHA256 of the raw body, keyed by a shared secret, in
// the request header Header. The defaults are Meta's WhatsApp Cloud API
// scheme (X-Hub-Signature-256: sha256=<hex>, keyed by the app secret).
// Every secret configured verifies: name the old and the new one during a
// rotation.
type InboundSignature struct {
	Header     string   `yaml:"header"`      // default X-Hub-Signature-256
	Prefix     *string  `yaml:"prefix"`      // default "sha256="; "" for a bare hex signature
	Secret     string   `yaml:"secret"`      // prefer secret_env
	SecretEnv  string   `yaml:"secret_env"`  // the variable holding the secret
	SecretsEnv []string `yaml:"secrets_env"` // more variables, each holding a secret (rotation)
}

// Configured says whether s names any secret.
func (s InboundSignature) Configured() bool {
	return s.Secret != "" || s.SecretEnv != "" || len(s.SecretsEnv) > 0
}

// Secrets returns every secret s names, from the file and the environment
// through getenv. A named variable that is empty, or a secret with
// leading or trailing whitespace (a trailing newline from a Secret file?),
// is an error naming where it came from: it would verify nothing.
func (s InboundSignature) Secrets(getenv func(string) string) ([][]byte, error) {
	var out [][]byte
	add := func(where, v string) error {
		if v == "" {
			return fmt.Errorf("inbound.signature: %s is empty", where)
		}
		if strings.TrimSpace(v) != v {
			return fmt.Errorf("inbound.signature: %s has leading or trailing whitespace (a trailing newline from a Secret file?)", where)
		}
		out = append(out, []byte(v))
		return nil
	}
	if s.Secret != "" {
		if err := add("secret", s.Secret); err != nil {
			return nil, err
		}
	}
	envs := s.SecretsEnv
	if s.SecretEnv != "" {
		envs = append([]string{s.SecretEnv}, envs...)
	}
	for _, e := range envs {
		if err := add("the variable "+e, getenv(e)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// InboundFields name where an inbound payload keeps each field.
type InboundFields struct {
	InstanceID string `yaml:"instance_id"` // default instance_id
	From       string `yaml:"from"`        // default from
	Text       string `yaml:"text"`        // default message_text
	Timestamp  string `yaml:"timestamp"`   // default timestamp (RFC 3339, or unix seconds or milliseconds)
}

// OptOut extends the opt-out detector's built-in lists: keywords (the
// whole message), phrases (inside a short message), fillers, negations and
// times, added to internal/optout's lists.json.
type OptOut struct {
	Extra optout.Lists `yaml:"extra"`
	Model OptOutModel  `yaml:"model"`
}

// OptOutModel configures the inbound intent model, asked when the lists
// say nothing. A zero threshold means optout's default
// (optout.DefaultOptOutThreshold, optout.DefaultOptInThreshold).
type OptOutModel struct {
	Path            string  `yaml:"path"`              // empty: the embedded model
	OptOutThreshold float64 `yaml:"opt_out_threshold"` // probability of opt_out at which the reply opts out
	OptInThreshold  float64 `yaml:"opt_in_threshold"`  // probability of opt_in at which it opts back in
	// ClauseThreshold: probability of opt_out at which one clause of a
	// longer reply makes it an opt-out (optout.DefaultClauseThreshold);
	// 1 turns the reading of clauses off.
	ClauseThreshold float64 `yaml:"clause_threshold"`
	// FirstClauseFloor: the whole reply's probability of opt_out under
	// which its first clause does not decide (optout.DefaultFirstClauseFloor).
	FirstClauseFloor float64 `yaml:"first_clause_floor"`
	Disabled         bool    `yaml:"disabled"` // the lists alone
}

// Events configures event delivery.
type Events struct {
	Receivers []Receiver    `yaml:"receivers"`
	RetryFor  time.Duration `yaml:"retry_for"` // default 72h; at least 24h
}

// Receiver is one webhook receiver of events.
type Receiver struct {
	Name      string `yaml:"name"` // default receiver-N
	URL       string `yaml:"url"`
	Secret    string `yaml:"secret"`     // HMAC key; prefer secret_env
	SecretEnv string `yaml:"secret_env"` // the variable holding the HMAC key
}

// ReceiverSecret returns r's signing secret.
func (r Receiver) ReceiverSecret(getenv func(string) string) string {
	if r.Secret != "" {
		return r.Secret
	}
	if r.SecretEnv != "" {
		return getenv(r.SecretEnv)
	}
	return ""
}

// Listen holds the addresses sendguard listens on.
type Listen struct {
	GRPC  string `yaml:"grpc"`  // ext_authz + grpc.health.v1; default 127.0.0.1:9191
	Admin string `yaml:"admin"` // admin HTTP API; default 127.0.0.1:9192
}

// Admin configures the admin API.
type Admin struct {
	// Token is the admin bearer token. When empty, the environment variable
	// named by TokenEnv (default SENDGUARD_ADMIN_TOKEN) is used; when both are
	// empty, every admin call except /healthz and /readyz is refused.
	Token    string `yaml:"token"`
	TokenEnv string `yaml:"token_env"`
	// Pprof serves the Go runtime's profiles at GET /debug/pprof/ on the
	// admin port, with the admin token, and turns on mutex and block
	// profiling. Off by default.
	Pprof bool `yaml:"pprof"`
	// ConsoleTokenEnv names the environment variable holding the console's
	// read-only token (default SENDGUARD_CONSOLE_TOKEN): a sign-in with it
	// sees every console page and changes nothing. There is no key for the
	// token itself, so that it stays out of config files; unset or empty,
	// only the admin token signs in.
	ConsoleTokenEnv string `yaml:"console_token_env"`
	// ConsoleAuditFile is where the console's audit trail is kept, one
	// JSON line per change (created 0600, appended and synced per entry).
	// Empty: kept in memory only, and a restart forgets it.
	ConsoleAuditFile string `yaml:"console_audit_file"`
}

// Store chooses where state lives. See README.md#state for what each type
// guarantees.
type Store struct {
	Type     string        `yaml:"type"` // memory, embedded (default) or redis
	Path     string        `yaml:"path"` // embedded: the bbolt file; default sendguard.db
	Embedded EmbeddedStore `yaml:"embedded"`
	Redis    RedisStore    `yaml:"redis"`
}

// EmbeddedStore configures when the embedded store's write-ahead log is
// fsync'd (README.md#state).
type EmbeddedStore struct {
	// Sync is "interval" (the default: a decision's write reaches the
	// kernel before the answer, fsync at least every SyncInterval; a power
	// loss can lose that window, a process crash nothing) or "always"
	// (fsync before the answer).
	Sync         string        `yaml:"sync"`
	SyncInterval time.Duration `yaml:"sync_interval"` // default 10ms; 1ms to 1s
}

// RedisStore configures the Redis store: one of Addr (one server), Addrs
// (Redis Cluster seeds) or Sentinel (a master found through Sentinels).
type RedisStore struct {
	Addr        string        `yaml:"addr"` // host:port of one server
	Username    string        `yaml:"username"`
	PasswordEnv string        `yaml:"password_env"` // the variable holding the password; default SENDGUARD_REDIS_PASSWORD
	DB          int           `yaml:"db"`
	Prefix      string        `yaml:"prefix"`  // key prefix; default "sendguard:"
	Timeout     time.Duration `yaml:"timeout"` // bound on every Redis call; default 150ms, below Envoy's 0.5s

	Addrs    []string      `yaml:"addrs"` // Redis Cluster seeds, host:port each (db must be 0)
	Sentinel RedisSentinel `yaml:"sentinel"`
	TLS      RedisTLS      `yaml:"tls"`
	// WaitReplicas, when positive, makes every write wait (Redis WAIT)
	// until that many replicas hold it, and the decision fail closed (503)
	// when they do not within Timeout: no count a failover could lose, at
	// the price of a replication round trip per decision and of failing
	// every send while fewer replicas are up. Default 0 (see README.md).
	WaitReplicas int `yaml:"wait_replicas"`
}

// RedisSentinel names the master the Sentinels at Addrs watch. Username
// and the variable PasswordEnv authenticate to the Sentinels (the data
// nodes use store.redis.username and password_env).
type RedisSentinel struct {
	MasterName  string   `yaml:"master_name"`
	Addrs       []string `yaml:"addrs"`
	Username    string   `yaml:"username"`
	PasswordEnv string   `yaml:"password_env"`
}

// RedisTLS turns on TLS to Redis (and to the Sentinels): Enabled with the
// system roots, or CAFile (PEM) instead of them; ServerName, when set, is
// the name the certificate must carry. InsecureSkipVerify accepts any
// certificate: for tests only.
type RedisTLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// On reports whether TLS is wanted: enabled, or any of its settings given.
func (t RedisTLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Quota configures the calendar of the daily and monthly quotas.
type Quota struct {
	// TimeZone is an IANA name; days and months are calendar periods there.
	TimeZone string `yaml:"time_zone"`
}

// Request bounds what a send request may be.
type Request struct {
	MaxBodyBytes   int    `yaml:"max_body_bytes"`    // default 65536; keep equal to Envoy's max_request_bytes
	MaxJSONDepth   int    `yaml:"max_json_depth"`    // default 16
	DefaultRegion  string `yaml:"default_region"`    // region for numbers without +/00, e.g. "SA"; default none (international format required)
	MaxMessageRune int    `yaml:"max_message_runes"` // default 4096 (WhatsApp's text limit)
}

// Route is one method+path that is the send path. Other traffic passes.
type Route struct {
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
}

// Plan is a plan's fair-use limits and sending speed.
type Plan struct {
	Daily    int64     `yaml:"daily"`
	Monthly  int64     `yaml:"monthly"`
	Throttle Throttle  `yaml:"throttle"`
	SlowLane Throttle  `yaml:"slow_lane"` // the bucket for risky-but-allowed content; default 1 a minute, burst 5
	Abuse    PlanAbuse `yaml:"abuse"`
}

// PlanAbuse are a plan's bulk-sending limits; zero values take the defaults.
type PlanAbuse struct {
	FanOutWindow   time.Duration `yaml:"fanout_window"`   // default 10m
	FanOutThrottle int           `yaml:"fanout_throttle"` // distinct recipients of one body per window before sending_throttled; default 50
	FanOutBlock    int           `yaml:"fanout_block"`    // before policy_violation; default 200
	PairPerMinute  int           `yaml:"pair_per_minute"` // messages to one recipient per minute; default 10
}

// Abuse configures the automatic pause.
type Abuse struct {
	AutoPause AutoPause `yaml:"auto_pause"`
}

// AutoPause pauses an instance after Violations policy_violation or
// message_purpose_not_allowed answers within Window.
type AutoPause struct {
	Violations int           `yaml:"violations"` // default 10; -1: never
	Window     time.Duration `yaml:"window"`     // default 1h
}

// Throttle is a token bucket: Rate tokens per second, at most Burst stored.
type Throttle struct {
	Rate  float64 `yaml:"rate"`
	Burst int64   `yaml:"burst"`
}

// Account owns API keys and instances.
type Account struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	Keys []Key  `yaml:"keys"`
}

// Key is one API key, stored as the hex SHA-256 of the key.
type Key struct {
	ID      string `yaml:"id"` // a label for logs; never the key
	SHA256  string `yaml:"sha256"`
	Revoked bool   `yaml:"revoked"`
}

// Instance is one sending instance (a WhatsApp number) of an account.
type Instance struct {
	ID      string `yaml:"id"`
	Name    string `yaml:"name"`
	Account string `yaml:"account"`
	Plan    string `yaml:"plan"`
	Paused  bool   `yaml:"paused"`
	Shadow  bool   `yaml:"shadow"` // forward this instance's would-be denials
}

// Suppression seeds one suppressed recipient of an instance.
type Suppression struct {
	Instance string `yaml:"instance"`
	Phone    string `yaml:"phone"`
	Reason   string `yaml:"reason"` // default manual_block
}

// DefaultPlans are the source contract's plans. Throttle values are ours.
func DefaultPlans() map[string]Plan {
	return map[string]Plan{
		"starter": {Daily: 100, Monthly: 2000, Throttle: Throttle{Rate: 1, Burst: 10}, Abuse: PlanAbuse{FanOutThrottle: 50, FanOutBlock: 200}},
		"growth":  {Daily: 500, Monthly: 10000, Throttle: Throttle{Rate: 5, Burst: 25}, Abuse: PlanAbuse{FanOutThrottle: 100, FanOutBlock: 400}},
		"scale":   {Daily: 1500, Monthly: 30000, Throttle: Throttle{Rate: 15, Burst: 60}, Abuse: PlanAbuse{FanOutThrottle: 250, FanOutBlock: 1000}},
	}
}

// Load reads, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes raw YAML strictly (unknown keys are errors), applies
// defaults and validates.
func Parse(raw []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // an empty file means all defaults
		return nil, fmt.Errorf("parse: %w", err)
	}
	c.applyDefaults()
	c.DecisionLog.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.Revision = RevisionOf(raw)
	return &c, nil
}

// RevisionOf names a config file's content as Config.Revision does: the
// first 12 hex digits of the SHA-256 of raw. It names a file that does not
// parse too (a refused reload's).
func RevisionOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])[:12]
}

func (c *Config) applyDefaults() {
	if c.Listen.GRPC == "" {
		c.Listen.GRPC = "127.0.0.1:9191"
	}
	if c.Listen.Admin == "" {
		c.Listen.Admin = "127.0.0.1:9192"
	}
	if c.Admin.ConsoleTokenEnv == "" {
		c.Admin.ConsoleTokenEnv = "SENDGUARD_CONSOLE_TOKEN"
	}
	if c.Admin.TokenEnv == "" {
		c.Admin.TokenEnv = "SENDGUARD_ADMIN_TOKEN"
	}
	if c.Inbound.Routes == nil { // routes: [] stays empty: nothing observed
		c.Inbound.Routes = []Route{{Method: "POST", Path: "/webhooks/inbound"}}
	}
	if c.Inbound.Signature.Header == "" {
		c.Inbound.Signature.Header = "X-Hub-Signature-256"
	}
	if c.Inbound.Signature.Prefix == nil {
		p := "sha256="
		c.Inbound.Signature.Prefix = &p
	}
	f := &c.Inbound.Fields
	for _, d := range []struct {
		p   *string
		def string
	}{{&f.InstanceID, "instance_id"}, {&f.From, "from"}, {&f.Text, "message_text"}, {&f.Timestamp, "timestamp"}} {
		if *d.p == "" {
			*d.p = d.def
		}
	}
	if c.Events.RetryFor == 0 {
		c.Events.RetryFor = 72 * time.Hour
	}
	if c.Reload.WatchInterval == 0 {
		c.Reload.WatchInterval = 5 * time.Second
	}
	for i := range c.Events.Receivers {
		if c.Events.Receivers[i].Name == "" {
			c.Events.Receivers[i].Name = fmt.Sprintf("receiver-%d", i+1)
		}
	}
	if c.Store.Type == "" {
		c.Store.Type = "embedded"
	}
	if c.Store.Type == "embedded" && c.Store.Path == "" {
		c.Store.Path = "sendguard.db"
	}
	if c.Store.Embedded.Sync == "" {
		c.Store.Embedded.Sync = "interval"
	}
	if c.Store.Embedded.SyncInterval == 0 {
		c.Store.Embedded.SyncInterval = 10 * time.Millisecond
	}
	if c.Store.Redis.PasswordEnv == "" {
		c.Store.Redis.PasswordEnv = "SENDGUARD_REDIS_PASSWORD"
	}
	if c.Store.Redis.Prefix == "" {
		c.Store.Redis.Prefix = "sendguard:"
	}
	if c.Store.Redis.Timeout == 0 {
		c.Store.Redis.Timeout = 150 * time.Millisecond
	}
	if c.Quota.TimeZone == "" {
		c.Quota.TimeZone = "UTC"
	}
	if c.Request.MaxBodyBytes == 0 {
		c.Request.MaxBodyBytes = 64 << 10
	}
	if c.Request.MaxJSONDepth == 0 {
		c.Request.MaxJSONDepth = 16
	}
	if c.Request.MaxMessageRune == 0 {
		c.Request.MaxMessageRune = 4096
	}
	if len(c.SendRoutes) == 0 {
		c.SendRoutes = []Route{{Method: "POST", Path: "/api/send-message"}}
	}
	// The seed's plans always exist; a plan named in the file replaces the
	// default of that name.
	plans := DefaultPlans()
	for name, p := range c.Plans {
		plans[name] = p
	}
	for name, p := range plans {
		if p.SlowLane.Rate == 0 {
			p.SlowLane = Throttle{Rate: 1.0 / 60, Burst: 5}
		}
		a := &p.Abuse
		if a.FanOutWindow == 0 {
			a.FanOutWindow = 10 * time.Minute
		}
		if a.FanOutThrottle == 0 {
			a.FanOutThrottle = 50
		}
		if a.FanOutBlock == 0 {
			a.FanOutBlock = 4 * a.FanOutThrottle
		}
		if a.PairPerMinute == 0 {
			a.PairPerMinute = 10
		}
		plans[name] = p
	}
	c.Plans = plans
	if c.Abuse.AutoPause.Violations == 0 {
		c.Abuse.AutoPause.Violations = 10
	}
	if c.Abuse.AutoPause.Window == 0 {
		c.Abuse.AutoPause.Window = time.Hour
	}
	for i := range c.Suppressions {
		if c.Suppressions[i].Reason == "" {
			c.Suppressions[i].Reason = "manual_block"
		}
	}
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for _, l := range []struct{ key, addr string }{{"listen.grpc", c.Listen.GRPC}, {"listen.admin", c.Listen.Admin}} {
		if _, port, err := net.SplitHostPort(l.addr); err != nil || port == "" {
			bad("%s %q: must be host:port", l.key, l.addr)
		}
	}
	for i, st := range c.Response.FailureStatuses {
		if st < 500 || st > 599 {
			bad("response.failure_statuses[%d] %d: must be 500 to 599 (the sidecar asks about a 5xx only)", i, st)
		}
	}
	if c.Admin.Token != "" {
		if err := checkToken(c.Admin.Token); err != nil {
			bad("admin.token: %v", err)
		}
	}
	if c.Quota.TimeZone == "Local" {
		bad("quota.time_zone %q: name an IANA zone; Local depends on the host, so replicas could count different days", c.Quota.TimeZone)
	} else if _, err := time.LoadLocation(c.Quota.TimeZone); err != nil {
		bad("quota.time_zone %q: %v", c.Quota.TimeZone, err)
	}
	if a := c.Abuse.AutoPause; a.Violations < -1 {
		bad("abuse.auto_pause.violations %d: must be positive, or -1 for never", a.Violations)
	} else if a.Violations > 0 && a.Window <= 0 {
		bad("abuse.auto_pause.window %s: must be positive", a.Window)
	}
	for i, r := range c.Inbound.Routes {
		if r.Method == "" || !strings.HasPrefix(r.Path, "/") {
			bad("inbound.routes[%d]: method and a path starting with / are required", i)
		}
	}
	sig := c.Inbound.Signature
	switch {
	case len(c.Inbound.Routes) > 0 && !sig.Configured() && !c.Inbound.Unsigned:
		bad("inbound.signature: set secret_env (the variable holding the secret your webhook's sender signs with, e.g. your Meta app secret) so that only signed inbound messages record opt-outs and opt-ins; or set inbound.unsigned: true to record unsigned ones (trials only: anyone who can reach the sidecar can then forge them); or set inbound.routes: [] to observe no webhook")
	case sig.Configured() && c.Inbound.Unsigned:
		bad("inbound.unsigned: true contradicts inbound.signature: remove one of them")
	}
	if !httpguts.ValidHeaderFieldName(sig.Header) {
		bad("inbound.signature.header %q: must be an HTTP header name", sig.Header)
	}
	if sig.Secret != "" && strings.TrimSpace(sig.Secret) != sig.Secret {
		bad("inbound.signature.secret: has leading or trailing whitespace")
	}
	seenEnv := map[string]bool{}
	for i, e := range append([]string{sig.SecretEnv}, sig.SecretsEnv...) {
		if i > 0 && e == "" {
			bad("inbound.signature.secrets_env[%d]: a variable name is required", i-1)
		}
		if e != "" && seenEnv[e] {
			bad("inbound.signature: the variable %s is named twice", e)
		}
		seenEnv[e] = true
	}
	for _, t := range []struct {
		name string
		v    float64
	}{{"optout.model.opt_out_threshold", c.OptOut.Model.OptOutThreshold}, {"optout.model.opt_in_threshold", c.OptOut.Model.OptInThreshold},
		{"optout.model.clause_threshold", c.OptOut.Model.ClauseThreshold}, {"optout.model.first_clause_floor", c.OptOut.Model.FirstClauseFloor}} {
		if t.v < 0 || t.v > 1 {
			bad("%s %v: a probability, 0 (the default) to 1", t.name, t.v)
		}
	}
	if c.Reload.WatchInterval < 100*time.Millisecond || c.Reload.WatchInterval > time.Hour {
		bad("reload.watch_interval %s: must be between 100ms and 1h", c.Reload.WatchInterval)
	}
	if c.Events.RetryFor < 24*time.Hour {
		bad("events.retry_for %s: must be at least 24h", c.Events.RetryFor)
	}
	names := map[string]bool{}
	for i, r := range c.Events.Receivers {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("events.receivers[%d]: url must be an http or https URL", i)
		}
		if r.Secret == "" && r.SecretEnv == "" {
			bad("events.receivers[%d] (%s): secret_env (or secret) is required: deliveries are signed", i, r.Name)
		}
		if strings.Contains(r.Name, "@") || names[r.Name] {
			bad("events.receivers[%d]: name %q must be unique and without @", i, r.Name)
		}
		names[r.Name] = true
	}
	if e := c.Store.Embedded; e.Sync != "always" && e.Sync != "interval" {
		bad("store.embedded.sync %q: must be always or interval", e.Sync)
	}
	if d := c.Store.Embedded.SyncInterval; d < time.Millisecond || d > time.Second {
		bad("store.embedded.sync_interval %s: must be from 1ms to 1s (a power loss can lose the sends of one interval)", d)
	}
	switch c.Store.Type {
	case "memory", "embedded":
	case "redis":
		r := c.Store.Redis
		modes := 0
		for _, set := range []bool{r.Addr != "", len(r.Addrs) > 0, r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0} {
			if set {
				modes++
			}
		}
		if modes != 1 {
			bad("store.redis: set exactly one of addr (one server), addrs (Redis Cluster seeds) or sentinel (master_name and addrs)")
		}
		hostPort := func(what, a string) {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				bad("%s %q: must be host:port", what, a)
			}
		}
		if r.Addr != "" {
			hostPort("store.redis.addr", r.Addr)
		}
		for i, a := range r.Addrs {
			hostPort(fmt.Sprintf("store.redis.addrs[%d]", i), a)
		}
		if len(r.Addrs) > 0 && r.DB != 0 {
			bad("store.redis.db %d: a Redis Cluster has only db 0", r.DB)
		}
		if r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0 {
			if r.Sentinel.MasterName == "" {
				bad("store.redis.sentinel.master_name is required with sentinel.addrs")
			}
			if len(r.Sentinel.Addrs) == 0 {
				bad("store.redis.sentinel.addrs is required with sentinel.master_name")
			}
			for i, a := range r.Sentinel.Addrs {
				hostPort(fmt.Sprintf("store.redis.sentinel.addrs[%d]", i), a)
			}
		}
		if r.WaitReplicas < 0 {
			bad("store.redis.wait_replicas %d: must not be negative", r.WaitReplicas)
		}
		if c.Store.Redis.Timeout <= 0 || c.Store.Redis.Timeout >= 500*time.Millisecond {
			bad("store.redis.timeout %s: must be positive and below Envoy's ext_authz timeout (0.5s)", c.Store.Redis.Timeout)
		}
		if c.Store.Redis.DB < 0 {
			bad("store.redis.db %d: must not be negative", c.Store.Redis.DB)
		}
	default:
		bad("store.type %q: must be memory, embedded or redis", c.Store.Type)
	}
	if c.Request.MaxBodyBytes < 256 || c.Request.MaxBodyBytes > MaxBodyBytesLimit {
		bad("request.max_body_bytes %d: must be from 256 to %d (the body reaches sendguard in one ext_authz gRPC message of at most 4 MiB with its headers); keep it equal to Envoy's with_request_body.max_request_bytes", c.Request.MaxBodyBytes, MaxBodyBytesLimit)
	}
	if c.Request.MaxMessageRune < 1 {
		bad("request.max_message_runes %d: must be positive", c.Request.MaxMessageRune)
	}
	if c.Request.MaxJSONDepth < 2 {
		bad("request.max_json_depth %d: must be at least 2", c.Request.MaxJSONDepth)
	}
	for i, r := range c.SendRoutes {
		if r.Method == "" || !strings.HasPrefix(r.Path, "/") {
			bad("send_routes[%d]: method and a path starting with / are required", i)
		}
	}
	for name, p := range c.Plans {
		if p.Daily <= 0 || p.Monthly <= 0 {
			bad("plans.%s: daily and monthly must be positive", name)
		}
		if p.Daily > p.Monthly {
			bad("plans.%s: daily %d exceeds monthly %d", name, p.Daily, p.Monthly)
		}
		if !finite(p.Throttle.Rate) || p.Throttle.Rate <= 0 || p.Throttle.Burst < 1 {
			bad("plans.%s.throttle: rate must be positive and burst at least 1", name)
		}
		if !finite(p.SlowLane.Rate) || p.SlowLane.Rate <= 0 || p.SlowLane.Burst < 1 {
			bad("plans.%s.slow_lane: rate must be positive and burst at least 1", name)
		}
		a := p.Abuse
		if a.FanOutWindow <= 0 {
			bad("plans.%s.abuse.fanout_window %s: must be positive", name, a.FanOutWindow)
		}
		if a.FanOutThrottle < 1 || a.FanOutBlock < a.FanOutThrottle {
			bad("plans.%s.abuse: fanout_throttle %d must be positive and fanout_block %d at least fanout_throttle", name, a.FanOutThrottle, a.FanOutBlock)
		}
		if a.PairPerMinute < 1 {
			bad("plans.%s.abuse.pair_per_minute %d: must be positive", name, a.PairPerMinute)
		}
	}
	accounts := map[string]bool{}
	hashes := map[string]string{}
	keyIDs := map[string]string{}
	for i, a := range c.Accounts {
		if a.ID == "" {
			bad("accounts[%d]: id is required", i)
		} else if err := checkID(a.ID); err != nil {
			bad("accounts[%d]: id %q: %v", i, a.ID, err)
		}
		if accounts[a.ID] {
			bad("accounts[%d]: duplicate id %q", i, a.ID)
		}
		accounts[a.ID] = true
		for j, k := range a.Keys {
			if err := checkID(k.ID); err != nil && k.ID != "" {
				bad("accounts[%d].keys[%d]: id %q: %v", i, j, k.ID, err)
			}
			if other, dup := keyIDs[k.ID]; dup && k.ID != "" {
				bad("accounts[%d].keys[%d]: duplicate key id %q (also a key of account %q): ids name keys in logs", i, j, k.ID, other)
			}
			keyIDs[k.ID] = a.ID
			h := strings.ToLower(k.SHA256)
			if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
				bad("accounts[%d].keys[%d]: sha256 must be 64 hex digits (see `sendguard hash-key`)", i, j)
				continue
			}
			if other, dup := hashes[h]; dup {
				bad("accounts[%d].keys[%d]: the same key is also configured for account %q", i, j, other)
			}
			hashes[h] = a.ID
		}
	}
	instances := map[string]bool{}
	for i, in := range c.Instances {
		if in.ID == "" {
			bad("instances[%d]: id is required", i)
		} else if err := checkID(in.ID); err != nil {
			bad("instances[%d]: id %q: %v", i, in.ID, err)
		} else if strings.HasPrefix(in.ID, "}") {
			// The Redis store's keys are prefix{id}:…: an id that closes the
			// hash tag at once would spread one instance over several Redis
			// Cluster slots, which a script may not touch together.
			bad("instances[%d]: id %q: must not begin with }", i, in.ID)
		}
		if instances[in.ID] {
			bad("instances[%d]: duplicate id %q", i, in.ID)
		}
		instances[in.ID] = true
		if !accounts[in.Account] {
			bad("instances[%d] (%s): unknown account %q", i, in.ID, in.Account)
		}
		if _, ok := c.Plans[in.Plan]; !ok {
			bad("instances[%d] (%s): unknown plan %q", i, in.ID, in.Plan)
		}
	}
	for i, s := range c.Suppressions {
		if !instances[s.Instance] {
			bad("suppressions[%d]: unknown instance %q", i, s.Instance)
		}
		if s.Phone == "" {
			bad("suppressions[%d]: phone is required", i)
		}
	}
	c.DecisionLog.validate(bad)
	c.Tracing.validate(bad)
	return errors.Join(errs...)
}

// Location returns the quota time zone. It is valid after Parse.
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Quota.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// AdminToken returns the configured admin token, from the file or else from
// the environment through getenv; "" when neither is set. A token a client
// could never present (whitespace, such as the trailing newline of a Secret
// file, or other than 1 to 512 visible ASCII characters) is an error naming
// where it came from.
func (c *Config) AdminToken(getenv func(string) string) (string, error) {
	if c.Admin.Token != "" {
		if err := checkToken(c.Admin.Token); err != nil {
			return "", fmt.Errorf("admin.token: %w", err)
		}
		return c.Admin.Token, nil
	}
	tok := getenv(c.Admin.TokenEnv)
	if tok == "" {
		return "", nil
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("admin token from %s (admin.token_env): %w", c.Admin.TokenEnv, err)
	}
	return tok, nil
}

// ConsoleToken returns the console's read-only token from the variable
// admin.console_token_env names, through getenv; "" when unset. A token no
// sign-in could carry, or one equal to the admin token (a read-only
// sign-in would then be an admin one), is an error.
func (c *Config) ConsoleToken(getenv func(string) string) (string, error) {
	tok := getenv(c.Admin.ConsoleTokenEnv)
	if tok == "" {
		return "", nil
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("console token from %s (admin.console_token_env): %w", c.Admin.ConsoleTokenEnv, err)
	}
	admin, err := c.AdminToken(getenv)
	if err != nil {
		return "", err
	}
	if tok == admin {
		return "", fmt.Errorf("console token from %s (admin.console_token_env) is the admin token; the read-only token must differ", c.Admin.ConsoleTokenEnv)
	}
	return tok, nil
}

// MaxBodyBytesLimit is the largest request.max_body_bytes: gRPC's default 4
// MiB message limit, less room for the request's headers.
const MaxBodyBytesLimit = 4<<20 - 64<<10

// checkToken refuses a bearer token no Authorization header can carry.
func checkToken(tok string) error {
	if strings.ContainsFunc(tok, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		return errors.New("has whitespace (a trailing newline from a Secret file?); a token is 1 to 512 visible ASCII characters")
	}
	if got, ok := keys.BearerToken("Bearer " + tok); !ok || got != tok {
		return errors.New("a token is 1 to 512 visible ASCII characters")
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// checkID refuses an id that cannot name a thing safely in store keys,
// logs and URLs: invalid UTF-8, control characters (a NUL would let one
// instance's id spell another store key), spaces, and more than 128 bytes.
func checkID(id string) error {
	if len(id) > 128 {
		return errors.New("longer than 128 bytes")
	}
	if !utf8.ValidString(id) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '/' {
			return fmt.Errorf("contains %U (no control characters, spaces or slashes)", r)
		}
	}
	return nil
}
