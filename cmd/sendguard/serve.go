package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/authz"
	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/admin"
	"github.com/sendguard/sendguard/internal/attempts"
	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/console"
	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/decisionlog"
	"github.com/sendguard/sendguard/internal/events"
	"github.com/sendguard/sendguard/internal/inbound"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/tracing/otlp"
	"github.com/sendguard/sendguard/internal/watch"
)

// app is everything serve builds from the config.
type app struct {
	cfg     *config.Config
	engine  *policy.Engine
	decider *decision.Decider
	store   stateStore

	dispatcher *events.Dispatcher
	phones     *phone.Normalizer
	scanner    *risk.Scanner
	admin      admin.Options
	models     models // the classifiers, with their versions

	consoleToken string             // the console's read-only token; "": none
	inbound      *notifyingRecorder // serve sets its after (the console's events)
}

// stateStore is the state sendguard serves from: what the decision and the
// admin API use, and Close.
type stateStore interface {
	Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error)
	TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error)
	Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error)
	ResetViolations(ctx context.Context, instance string) error
	Usage(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error)
	Refund(ctx context.Context, instance, decisionID string, now time.Time) (store.RefundResult, error)
	Suppressed(ctx context.Context, instance, phone string) (bool, error)
	Suppression(ctx context.Context, instance, phone string) (store.Suppression, error)
	PutSuppression(ctx context.Context, s store.Suppression) error
	AddSuppressions(ctx context.Context, sups []store.Suppression) (int, error)
	DeleteSuppression(ctx context.Context, instance, phone string) error
	SuppressionPage(ctx context.Context, instance, cursor string, limit int) ([]store.Suppression, string, error)
	Paused(ctx context.Context, instance string) (bool, error)
	SetPaused(ctx context.Context, instance string, paused bool) error
	events.Outbox
	Pending(ctx context.Context) (int, error)
	Close() error
}

// openStore opens the configured store.
func openStore(ctx context.Context, cfg *config.Config, cal limiter.Calendar, getenv func(string) string, reset bool, log *slog.Logger) (stateStore, error) {
	switch cfg.Store.Type {
	case "memory":
		return store.NewMemory(cal), nil
	case "embedded":
		if dir := filepath.Dir(cfg.Store.Path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store directory: %w", err)
			}
		}
		sync, err := store.ParseSync(cfg.Store.Embedded.Sync)
		if err != nil {
			return nil, fmt.Errorf("store.embedded.%w", err)
		}
		return openEmbedded(cfg.Store.Path, store.EmbeddedOptions{Calendar: cal, Sync: sync, SyncInterval: cfg.Store.Embedded.SyncInterval, Log: log}, reset, log)
	}
	return openRedis(ctx, cfg, cal, getenv)
}

// openEmbedded opens the embedded store. A damaged file is an error (the
// process exits non-zero) unless reset, `serve --store-reset`, asks by name
// to move it aside and start with empty state. reset on a healthy file does
// nothing, so a flag left in a manifest cannot wipe quotas at every restart.
func openEmbedded(path string, opts store.EmbeddedOptions, reset bool, log *slog.Logger) (stateStore, error) {
	st, err := store.OpenEmbedded(path, opts)
	switch {
	case err == nil:
		if reset {
			log.Info("--store-reset: the store file is healthy, nothing was reset", "path", path)
		}
		return st, nil
	case !reset || !errors.Is(err, store.ErrCorrupt):
		return nil, err
	}
	aside, rerr := store.ResetEmbedded(path, time.Now())
	if rerr != nil {
		return nil, fmt.Errorf("%w (and --store-reset failed: %w)", err, rerr)
	}
	log.Warn("--store-reset: the damaged store file was moved aside; starting with empty state: quotas, suppressions, pauses and undelivered events of the old file are not in it",
		"path", path, "moved_to", aside, "damage", err.Error())
	return store.OpenEmbedded(path, opts)
}

// seedSuppressions writes the config's suppressions, one AddSuppressions
// batch per instance: a suppression already in the store (from an earlier
// start, or changed since) is kept as it is. Every phone is checked first;
// a bad one is an error and nothing is written. readOnly checks only. On a
// reload, prev is the running config and only entries it lacks are
// written, so a suppression lifted through the admin API stays lifted
// until the next start.
func seedSuppressions(ctx context.Context, st stateStore, cfg, prev *config.Config, phones *phone.Normalizer, readOnly bool) error {
	seeded := map[string]bool{}
	if prev != nil {
		for _, s := range prev.Suppressions {
			if e164, ok := phones.E164(s.Phone); ok {
				seeded[s.Instance+"\x00"+e164] = true
			}
		}
	}
	var order []string
	by := map[string][]store.Suppression{}
	now := time.Now().UTC()
	for i, s := range cfg.Suppressions {
		e164, ok := phones.E164(s.Phone)
		if !ok {
			return fmt.Errorf("config: suppressions[%d]: %q is not a valid phone number", i, s.Phone)
		}
		if seeded[s.Instance+"\x00"+e164] {
			continue
		}
		if _, ok := by[s.Instance]; !ok {
			order = append(order, s.Instance)
		}
		by[s.Instance] = append(by[s.Instance], store.Suppression{Instance: s.Instance, Phone: e164, Reason: s.Reason, Source: "config", CreatedAt: now})
	}
	if readOnly {
		return nil
	}
	for _, inst := range order {
		if _, err := st.AddSuppressions(ctx, by[inst]); err != nil {
			return fmt.Errorf("seed suppressions of %s: %w", inst, err)
		}
	}
	return nil
}

// build validates the config and builds every part, without listening.
func build(ctx context.Context, f flags, log *slog.Logger, getenv func(string) string) (*app, error) {
	return buildWith(ctx, f, log, getenv, nil)
}

// buildWith is build for a reload when prev is the running app: it uses
// prev's open store (the state stays where it is) and prev's phone
// normaliser while the default region is the same, and opens neither. With
// prev nil it opens the store the config names. On error everything opened
// here is closed again; prev's parts stay open.
func buildWith(ctx context.Context, f flags, log *slog.Logger, getenv func(string) string, prev *app) (a *app, err error) {
	var phones *phone.Normalizer
	var st stateStore
	if prev != nil {
		st = prev.store
	}
	owned := st == nil
	defer func() {
		if err == nil {
			return
		}
		if phones != nil && (prev == nil || phones != prev.phones) {
			phones.Close()
		}
		if owned && st != nil {
			st.Close()
		}
	}()
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	adminToken, err := cfg.AdminToken(getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", f.config, err)
	}
	consoleToken, err := cfg.ConsoleToken(getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", f.config, err)
	}
	var prevModels *models
	if prev != nil {
		prevModels = &prev.models
	}
	ms, err := loadModels(cfg, prevModels)
	if err != nil {
		return nil, err
	}
	scanner, engine, err := policiesFor(ctx, f, cfg, ms, prev, log)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.cfg.Request.DefaultRegion == cfg.Request.DefaultRegion {
		phones = prev.phones
	} else if phones, err = phone.New(phone.Options{DefaultRegion: cfg.Request.DefaultRegion}); err != nil {
		return nil, err
	}
	cal := limiter.Calendar{Loc: cfg.Location()}
	switch {
	case !owned:
	case f.checkOnly:
		st = store.NewMemory(cal) // config check validates without touching state
	default:
		if st, err = openStore(ctx, cfg, cal, getenv, f.storeReset, log); err != nil {
			st = nil
			return nil, err
		}
	}

	var entries []keys.Entry
	for _, a := range cfg.Accounts {
		for _, k := range a.Keys {
			entries = append(entries, keys.Entry{SHA256: strings.ToLower(k.SHA256), Key: keys.Key{ID: k.ID, Account: a.ID, Revoked: k.Revoked}})
		}
	}
	prevPaused := map[string]bool{}
	var prevCfg *config.Config
	if prev != nil {
		prevCfg = prev.cfg
		for _, in := range prev.cfg.Instances {
			prevPaused[in.ID] = in.Paused
		}
	}
	instances := make(map[string]decision.Instance, len(cfg.Instances))
	adminInstances := make(map[string]admin.Instance, len(cfg.Instances))
	for _, in := range cfg.Instances {
		p := cfg.Plans[in.Plan]
		l := limiter.Limits{Daily: p.Daily, Monthly: p.Monthly, Rate: p.Throttle.Rate, Burst: p.Throttle.Burst}
		pa := p.Abuse
		instances[in.ID] = decision.Instance{ID: in.ID, Name: in.Name, Account: in.Account, Plan: in.Plan, Limits: l,
			Abuse:    abuse.Limits{FanOutWindow: pa.FanOutWindow, FanOutThrottle: pa.FanOutThrottle, FanOutBlock: pa.FanOutBlock, PairPerMinute: pa.PairPerMinute},
			SlowLane: limiter.Limits{Daily: math.MaxInt64, Monthly: math.MaxInt64, Rate: p.SlowLane.Rate, Burst: p.SlowLane.Burst},
			Shadow:   in.Shadow,
		}
		adminInstances[in.ID] = admin.Instance{ID: in.ID, Name: in.Name, Plan: in.Plan, Limits: l, Shadow: in.Shadow}
		// Seeds from the config apply at every start: paused: true in the
		// file pauses the instance again after a restart. A reload applies
		// only the seeds the edit added, so an instance an operator
		// resumed is not paused again by an unrelated edit (a key rotated).
		if in.Paused && !f.readOnly && !prevPaused[in.ID] {
			if err := st.SetPaused(ctx, in.ID, true); err != nil {
				return nil, fmt.Errorf("seed pause of %s: %w", in.ID, err)
			}
		}
	}
	if err := seedSuppressions(ctx, st, cfg, prevCfg, phones, f.readOnly); err != nil {
		return nil, err
	}
	routes := make([]decision.Route, len(cfg.SendRoutes))
	for i, r := range cfg.SendRoutes {
		routes[i] = decision.Route{Method: strings.ToUpper(r.Method), Path: r.Path}
	}
	receivers := make([]events.Receiver, len(cfg.Events.Receivers))
	for i, r := range cfg.Events.Receivers {
		secret := r.ReceiverSecret(getenv)
		if secret == "" && !f.checkOnly {
			return nil, fmt.Errorf("events receiver %s: the secret variable %s is empty", r.Name, r.SecretEnv)
		}
		receivers[i] = events.Receiver{Name: r.Name, URL: r.URL, Secret: []byte(secret)}
	}
	disp := &events.Dispatcher{Outbox: st, Receivers: receivers, RetryFor: cfg.Events.RetryFor, Log: log}
	detector := ms.detector(cfg)
	recInstances := make(map[string]inbound.Instance, len(cfg.Instances))
	for _, in := range cfg.Instances {
		recInstances[in.ID] = inbound.Instance{ID: in.ID, Name: in.Name}
	}
	recorder := &inbound.Recorder{
		Instances: recInstances, State: st, Phones: phones, Receivers: receivers, Wake: disp.Wake,
		Classify: func(text string) (string, string) {
			r := detector.Classify(text)
			return string(r.Intent), r.Matched
		},
	}
	notify := &notifyingRecorder{r: recorder}
	inRoutes := make([]decision.Route, len(cfg.Inbound.Routes))
	for i, r := range cfg.Inbound.Routes {
		inRoutes[i] = decision.Route{Method: strings.ToUpper(r.Method), Path: r.Path}
	}
	fl := cfg.Inbound.Fields
	var inSig *decision.Signature
	switch {
	case cfg.Inbound.Signature.Configured():
		secrets, err := cfg.Inbound.Signature.Secrets(getenv)
		if err != nil && !f.checkOnly {
			return nil, err
		}
		if f.checkOnly && len(secrets) == 0 {
			secrets = [][]byte{[]byte("config-check")} // the variables are the deployment's, not the check's
		}
		inSig = &decision.Signature{Header: cfg.Inbound.Signature.Header, Prefix: *cfg.Inbound.Signature.Prefix, Secrets: secrets}
	case len(cfg.Inbound.Routes) > 0 && cfg.Inbound.Unsigned && !f.checkOnly:
		log.Warn("inbound.unsigned is true: inbound webhook requests are recorded without a signature, so anyone who can reach the sidecar can forge opt-outs (suppressing any recipient) and opt-ins (lifting a recipient's STOP); set inbound.signature for production",
			"routes", len(cfg.Inbound.Routes))
	}
	autoPause := decision.AutoPause{Violations: max(0, cfg.Abuse.AutoPause.Violations), Window: cfg.Abuse.AutoPause.Window,
		OnPause: func(ctx context.Context, inst decision.Instance, n int) error {
			now := time.Now().UTC()
			log.Warn("instance paused for review after repeated violations", "instance_id", inst.ID, "violations", n)
			ev := events.InstancePaused{Event: events.InstancePausedKind, InstanceID: inst.ID, InstanceName: inst.Name,
				Reason: "repeated_violations", Violations: n, Timestamp: now.Format(time.RFC3339)}
			id := fmt.Sprintf("evt_pause_%s_%d", inst.ID, now.UnixNano())
			if err := events.Enqueue(ctx, st, receivers, id, events.InstancePausedKind, ev.Body(), now); err != nil {
				return err
			}
			disp.Wake()
			return nil
		}}
	d, err := decision.New(decision.Options{
		Scanner:   scanner,
		Abuse:     st, // the store's abuse counters: shared by replicas on Redis
		AutoPause: autoPause,
		// A text sent again skips the fan-out key's normalisation and
		// SHA-256 too (about 0.45 MB).
		BodyKeyCache: scanCacheSize,
		Inbound: &decision.Inbound{Routes: inRoutes, Recorder: notify,
			Fields: decision.Fields{InstanceID: fl.InstanceID, From: fl.From, Text: fl.Text, Timestamp: fl.Timestamp}, Signature: inSig},
		Keys:            keys.NewKeyring(entries),
		Instances:       instances,
		Policy:          engine,
		State:           st,
		Phones:          phones,
		Routes:          routes,
		MaxBodyBytes:    cfg.Request.MaxBodyBytes,
		MaxJSONDepth:    cfg.Request.MaxJSONDepth,
		MaxMessageRunes: cfg.Request.MaxMessageRune,
		Shadow:          cfg.Shadow,

		RateLimitHeaders: cfg.Response.RateLimitHeaders,
		Calendar:         cal,
	})
	if err != nil {
		return nil, err
	}
	return &app{
		cfg: cfg, engine: engine, decider: d, store: st, phones: phones, dispatcher: disp, scanner: scanner, models: ms,
		consoleToken: consoleToken, inbound: notify,
		admin: admin.Options{
			Inbound:   notify.Record,
			Token:     adminToken,
			Instances: adminInstances,
			State:     st,
			Phones:    phones,
			Calendar:  cal,
			Log:       log,
			Pprof:     cfg.Admin.Pprof,
			Shadow:    cfg.Shadow,
		},
	}, nil
}

// scanCacheSize is how many messages' content signals the scanner
// remembers (risk.Options.CacheSize: about 1.6 MB, allocated at start and
// on a reload that builds a new scanner). A text sent again (a fixed
// notification to many recipients, a retry) skips the scan and the content
// model; a text that never repeats (one with a code or a name in it) costs
// two hashes and is never cached, so it evicts nothing.
const scanCacheSize = 8192

// policiesFor builds the content scanner and the policy engine of cfg.
// The probes of the policy tree run through the scanner real sends use,
// the content model included, so a change to either prepares the policies
// again. On a reload that changed neither (the tree's revision on disk, the
// risk settings and the content model are prev's) it returns prev's: a
// config-only change (a key, a plan) then costs no policy compilation, the
// most CPU a reload can take from requests being decided.
func policiesFor(ctx context.Context, f flags, cfg *config.Config, ms models, prev *app, log *slog.Logger) (*risk.Scanner, *policy.Engine, error) {
	if prev != nil && reflect.DeepEqual(prev.cfg.Risk, cfg.Risk) && ms.outbound == prev.models.outbound {
		if rev, err := policy.DirRevision(f.policies); err == nil && rev == prev.engine.Revision() {
			return prev.scanner, prev.engine, nil
		}
	}
	scanner := risk.New(risk.Options{
		Vocabulary: new(risk.DefaultVocabulary().Merge(cfg.Risk.Extra)),
		Shorteners: append(append([]string(nil), risk.DefaultShorteners...), cfg.Risk.Shorteners...),
		Model:      ms.outbound,
		CacheSize:  scanCacheSize,
	})
	// The engine logs which evaluator decides (the IR VM, or topdown and why).
	engine, err := policy.New(ctx, policy.Options{Dir: f.policies, Scan: scanner.Scan, Log: log})
	if err != nil {
		return nil, nil, fmt.Errorf("load policies: %w", err)
	}
	return scanner, engine, nil
}

func checkConfig(ctx context.Context, f flags, stdout io.Writer) error {
	f.checkOnly = true
	a, err := build(ctx, f, slog.New(slog.DiscardHandler), func(string) string { return "" })
	if err != nil {
		return err
	}
	a.phones.Close()
	a.store.Close()
	fmt.Fprintf(stdout, "config ok: %d accounts, %d instances, %d plans; policies (%s) valid, %d probes answered as expected\n",
		len(a.cfg.Accounts), len(a.cfg.Instances), len(a.cfg.Plans), a.engine.Source(), len(a.engine.Probes()))
	return nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// live is what a reload swaps while serving: the decider the ext_authz
// server asks and the admin API's handler. Requests in flight finish on the
// parts they started with.
type live struct {
	dec   atomic.Pointer[deciderBox]
	admin atomic.Pointer[http.Handler]
}

// decider is what serves Check: the decision, wrapped in the decision log
// when there is one.
type decider interface {
	Decide(ctx context.Context, r decision.Request) (decision.Result, error)
}

type deciderBox struct{ decider }

func (l *live) Decide(ctx context.Context, r decision.Request) (decision.Result, error) {
	return l.dec.Load().Decide(ctx, r)
}

func (l *live) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*l.admin.Load()).ServeHTTP(w, r) }

// restartOnly names what a reload cannot change while serving: the
// listeners and the store stay those of the start.
func restartOnly(old, next *config.Config) error {
	var what []string
	if !reflect.DeepEqual(old.Listen, next.Listen) {
		what = append(what, "listen")
	}
	if !reflect.DeepEqual(old.Store, next.Store) {
		what = append(what, "store")
	}
	if !reflect.DeepEqual(old.Tracing, next.Tracing) {
		what = append(what, "tracing")
	}
	if !reflect.DeepEqual(old.Response.FailureStatuses, next.Response.FailureStatuses) || !reflect.DeepEqual(old.Response.ReplaceFailures, next.Response.ReplaceFailures) {
		what = append(what, "response.failure_statuses or response.replace_failures")
	}
	if len(what) > 0 {
		return fmt.Errorf("%s changed: that takes a restart; nothing was applied", strings.Join(what, ", "))
	}
	return nil
}

// serve runs the gRPC and admin servers until ctx is done, then shuts both
// down gracefully. grpc.health.v1 reports NOT_SERVING until everything is
// built and listening, and again while shutting down.
//
// SIGHUP, and a change to the config file or the --policies directory seen
// by the watcher (reload.watch, every reload.watch_interval), reload: the
// config and the policies are read, validated and built again on the open
// store, and swapped in only if everything succeeds; otherwise the error is
// logged, counted, and the running config and policies stay in force.
func serve(ctx context.Context, f flags, getenv func(string) string, stdout, stderr io.Writer) error {
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	a, err := build(ctx, f, log, getenv)
	if err != nil {
		return err
	}
	// Building (compiling and planning the policies twice, opening the
	// store and indexing its suppressions, decoding the models) leaves
	// garbage that a sidecar need not keep mapped until the collector's
	// next cycle: return it to the OS before anything listens.
	debug.FreeOSMemory()
	cur := a // the running app; only the reload loop replaces it
	defer func() { cur.phones.Close() }()
	defer a.store.Close()
	grpcAddr, adminAddr := a.cfg.Listen.GRPC, a.cfg.Listen.Admin
	if f.grpcAddr != "" {
		grpcAddr = f.grpcAddr
	}
	if f.adminAddr != "" {
		adminAddr = f.adminAddr
	}
	if a.admin.Token == "" {
		log.Warn("no admin token configured: the admin API's /v1 endpoints are closed")
	}
	if a.admin.Pprof {
		// Sample one contended lock in 100 and about one blocking event per
		// 100µs spent blocked: enough to find what holds the tail.
		runtime.SetMutexProfileFraction(100)
		runtime.SetBlockProfileRate(100_000)
		log.Info("admin.pprof: runtime profiles at /debug/pprof/ on the admin port (with the admin token)")
	}

	tsettings, err := a.cfg.Tracing.Resolve(getenv)
	if err != nil {
		return err
	}
	var (
		traces *otlp.Provider
		tracer trace.Tracer // nil: tracing off
		prop   propagation.TextMapPropagator
	)
	if tsettings.Enabled {
		if traces, err = otlp.New(ctx, otlp.Options{Endpoint: tsettings.Endpoint, Insecure: tsettings.Insecure,
			SampleRatio: tsettings.SampleRatio, ServiceName: tsettings.ServiceName, Version: currentVersion().Version}); err != nil {
			return err
		}
		defer func() {
			// Every Check has returned: export what the batch holds, for
			// at most 5s (the decision log's flush comes first and matters more).
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := traces.Shutdown(sctx); err != nil {
				log.Error("tracing: spans not flushed", "err", err)
			}
		}()
		// The SDK reports export failures here (otherwise as text on stderr).
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
		tracer, prop = traces.Tracer(), traces.Propagator()
		log.Info("tracing on", "otlp_endpoint", tsettings.Endpoint, "from", tsettings.From, "insecure", tsettings.Insecure,
			"sample_ratio", tsettings.SampleRatio, "service_name", tsettings.ServiceName)
	}
	a.decider.SetTracer(tracer)

	grpcLis, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("listen grpc: %w", err)
	}
	adminLis, err := net.Listen("tcp", adminAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("listen admin: %w", err)
	}

	// The Authorization service reads its CheckRequests straight from
	// the wire, and calls run on long-lived workers (authz.ServerOptions).
	var gopts []grpc.ServerOption
	if traces != nil {
		gopts = append(gopts, grpc.StatsHandler(traces.ServerHandler()))
	}
	gs := grpc.NewServer(authz.ServerOptions(gopts...)...)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The text caches' hits and misses (textCacheMetrics), read at each scrape.
	textCaches := newTextCacheMetrics()
	textCaches.use(a.scanner, a.decider)
	memos := newMemoMetrics()
	memos.use(a.engine)
	reg.MustRegister(textCaches, memos)
	// The console: its audit trail, sign-in key, recent decisions and
	// events live as long as the process; a reload swaps its Config.
	audit, err := console.OpenAudit(a.cfg.Admin.ConsoleAuditFile, 1000)
	if err != nil {
		grpcLis.Close()
		adminLis.Close()
		return err
	}
	defer audit.Close()
	if !audit.Durable() {
		log.Warn("admin.console_audit_file is not set: the console's audit trail is kept in memory only, and a restart forgets it")
	}
	var recent *console.Recent
	var observe func(*decisionlog.Record)
	if a.cfg.DecisionLog.Sink != "" {
		recent = console.NewRecent(100)
		observe = observeDecisions(recent, a.cfg.DecisionLog.Phone != decisionlog.PhoneOmit)
	}
	dlog, err := openDecisionLog(a.cfg, a.engine, getenv, stdout, reg, log, observe)
	if err != nil {
		grpcLis.Close()
		adminLis.Close()
		return err
	}
	// logged wraps a decider in the decision log when there is one, with
	// the revisions of the config and policies it decides with.
	logged := func(a *app) decider {
		if dlog == nil {
			return a.decider
		}
		return decisionlog.WrapWith(a.decider, dlog, a.engine.Revision, a.cfg.Revision)
	}
	var lv live
	lv.dec.Store(&deciderBox{logged(a)})
	srv := authz.NewServer(&lv, log).WithMetrics(reg).WithTracing(tracer, prop)
	srv.Register(gs)
	// The response path (ext_proc, envoy/sidecar.yaml): a failed send
	// answers gateway_send_failed. Unregistered, Envoy fails open.
	var rs *authz.ResponseServer // nil: the response path is off
	if on, statuses := a.cfg.Response.Failures(); on {
		// A failed send also gives back what it took (the store's receipt
		// of its decision): the store is fixed for the process's life.
		rs = authz.NewResponseServer(statuses, log).WithRefunds(a.store, nil).WithMetrics(reg)
		if dlog != nil {
			rs.WithRefundLog(dlog)
		}
		// A send Envoy gave up on (ext_authz timeout) gives back what it
		// took too: Envoy never forwards it.
		srv.WithLateRefunds(rs)
		extprocv3.RegisterExternalProcessorServer(gs, rs)
	}
	healthpb.RegisterHealthServer(gs, hs)

	var ready atomic.Bool
	// What GET /v1/revision and /readyz report; the reload loop updates it.
	var revs revisions
	revs.set(a, f.config, time.Now().UTC())
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	// Wrong admin and console tokens, counted by client address across
	// reloads and across the API and the console: 10 in a row, then one
	// every 6 s.
	guesses := attempts.New(attempts.Options{})
	adminHandler := func(a *app) *http.Handler {
		a.admin.Attempts = guesses
		a.admin.Panics = srv.Panics("admin")
		a.admin.Metrics = metrics
		a.admin.Ready = ready.Load
		a.admin.Revisions = revs.report
		st := a.store
		a.admin.Ping = func(ctx context.Context) error {
			_, err := st.Pending(ctx)
			return err
		}
		h := admin.Handler(a.admin)
		return &h
	}
	lv.admin.Store(adminHandler(a))
	recipientEvents := console.NewEvents(0)
	onInbound := func(m inbound.Message, out inbound.Outcome) {
		recipientEvents.Add(console.RecipientEvent{Time: time.Now().UTC(), Instance: m.InstanceID, Phone: out.Phone,
			Intent: out.Intent, Matched: out.Matched, Changed: out.Changed, EventID: out.EventID})
	}
	a.inbound.after = onInbound
	rates := console.NewRates(time.Minute)
	cons, err := console.New(console.Options{Audit: audit, Recent: recent, Events: recipientEvents, Rates: rates,
		Counters:  func() (map[string]float64, map[string]float64) { return counterTotals(reg) },
		Revisions: consoleRevisions(&revs), Log: log, Panics: srv.Panics("console"), Attempts: guesses,
	}, consoleConfig(a))
	if err != nil {
		grpcLis.Close()
		adminLis.Close()
		return err
	}
	adminMux := http.NewServeMux()
	adminMux.Handle("/console/", cons)
	adminMux.Handle("/", &lv)
	hsrv := &http.Server{Handler: adminMux, ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// The console's decisions per second: the counters' totals every
		// 5s, so that a page shows the rate over the last minute.
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			d, _ := counterTotals(reg)
			rates.Sample(time.Now(), d)
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	g.Go(func() error {
		// ErrServerStopped: the shutdown below ran before Serve began (a
		// cancel during start-up), which is a clean stop too.
		if err := gs.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		if err := hsrv.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		ready.Store(false)
		hs.Shutdown() // NOT_SERVING: Envoy's health check drains us first
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		_ = hsrv.Shutdown(sctx)
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			gs.Stop()
		}
		// Refunds the store failed are still being tried again: let them
		// finish, in what is left of the budget, before the store closes.
		if rs != nil {
			if err := rs.Drain(sctx); err != nil {
				log.Warn("shutdown: refunds abandoned; those failed sends stay counted", "err", err)
			}
		}
		return nil
	})

	// Events: deliver the outbox (including what a previous run left). A
	// reload stops the running dispatcher and starts the new config's.
	delivered := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_events_delivered_total", Help: "Event deliveries acknowledged by a receiver."}, []string{"receiver"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_events_failed_total", Help: "Event delivery attempts that failed (retried)."}, []string{"receiver"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_events_dropped_total", Help: "Events given up on after events.retry_for."}, []string{"receiver"})
	// The store stays the same across reloads (buildWith keeps prev's).
	st := a.store
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sendguard_events_pending", Help: "Event deliveries not yet acknowledged by their receiver (one per event and receiver), read from the store at each scrape; NaN when the store could not be read."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, err := st.Pending(ctx)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		})
	reg.MustRegister(delivered, failed, dropped, pending)
	stopDispatch := func() {}
	dispatch := func(d *events.Dispatcher) {
		for _, r := range d.Receivers { // export zeros: an alert on increase() sees the first failure
			delivered.WithLabelValues(r.Name)
			failed.WithLabelValues(r.Name)
			dropped.WithLabelValues(r.Name)
		}
		d.Delivered = func(r string) { delivered.WithLabelValues(r).Inc() }
		d.Failed = func(r string) { failed.WithLabelValues(r).Inc() }
		d.Dropped = func(r string) { dropped.WithLabelValues(r).Inc() }
		d.Tracer, d.Propagator = tracer, prop
		dctx, cancel := context.WithCancel(gctx)
		stopDispatch = cancel
		g.Go(func() error { return d.Run(dctx) })
	}
	dispatch(a.dispatcher)

	// Reloads. sendguard_reloads_total{trigger,result} counts every one;
	// sendguard_policy_reloads_total{result} is the same count without the
	// trigger (every reload re-reads the policies), kept for dashboards
	// that know it. Both export zeros, so an alert on a refused reload
	// sees the first one.
	policyReloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_policy_reloads_total", Help: "Reloads of the config and policies (SIGHUP or a change seen on disk), by result: applied, or refused (the running ones stay)."}, []string{"result"})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_reloads_total", Help: "Reloads of the config and policies, by trigger (sighup, or watch: a change seen on disk) and result (applied, or refused: the running config and policies stay)."}, []string{"trigger", "result"})
	// sendguard_config_last_reload_successful is 0 while the most recent
	// reload was refused (the running revision is older than what is on
	// disk), 1 otherwise, as Prometheus's own
	// prometheus_config_last_reload_successful.
	lastOK := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sendguard_config_last_reload_successful", Help: "1 unless the most recent reload of the config and policies was refused (then 0: the running revision is not what is on disk; GET /v1/revision says why)."})
	lastOKAt := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sendguard_config_last_reload_success_timestamp_seconds", Help: "When the config and policies in force were loaded (start-up or the last applied reload), in Unix seconds."})
	lastOK.Set(1)
	lastOKAt.SetToCurrentTime()
	reg.MustRegister(policyReloads, reloads, lastOK, lastOKAt)
	for _, r := range []string{"applied", "refused"} {
		policyReloads.WithLabelValues(r)
		for _, t := range []string{"sighup", "watch"} {
			reloads.WithLabelValues(t, r)
		}
	}
	reload := func(ctx context.Context, trigger string) {
		next, err := buildWith(ctx, f, log, getenv, cur)
		if err == nil {
			if err = restartOnly(cur.cfg, next.cfg); err != nil && next.phones != cur.phones {
				next.phones.Close()
			}
		}
		if err != nil {
			revs.refused(trigger, f, err, time.Now().UTC())
			lastOK.Set(0)
			policyReloads.WithLabelValues("refused").Inc()
			reloads.WithLabelValues(trigger, "refused").Inc()
			log.Error("config and policy reload failed; keeping the running config and policies", "trigger", trigger, "err", err)
			return
		}
		next.decider.SetTracer(tracer)
		next.inbound.after = onInbound
		old := cur
		cur = next
		lv.dec.Store(&deciderBox{logged(next)})
		textCaches.use(next.scanner, next.decider)
		memos.use(next.engine)
		lv.admin.Store(adminHandler(next))
		cons.Set(consoleConfig(next))
		stopDispatch()
		dispatch(next.dispatcher)
		if old.phones != next.phones {
			// A new default region: the old normaliser goes once the
			// requests still deciding with it are long done (Envoy gives
			// each 0.5s); closing it under them could fail them.
			time.AfterFunc(time.Minute, old.phones.Close)
		}
		revs.applied(trigger, next, f.config, time.Now().UTC())
		lastOK.Set(1)
		lastOKAt.SetToCurrentTime()
		policyReloads.WithLabelValues("applied").Inc()
		reloads.WithLabelValues(trigger, "applied").Inc()
		memo, fields := next.engine.Memoized()
		log.Info("config and policies reloaded", "trigger", trigger, "policies", next.engine.Source(), "probes", len(next.engine.Probes()),
			"instances", len(next.cfg.Instances), "memoized", memo, "memo_key", fields)
	}

	// One loop runs every reload, whatever its trigger, one at a time.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	changed := make(chan []string)
	if a.cfg.Reload.Watching() {
		w := &watch.Watcher{Paths: []string{f.config, f.policies}, Interval: a.cfg.Reload.WatchInterval, Log: log,
			Changed: func(ctx context.Context, paths []string) {
				select {
				case changed <- paths:
				case <-ctx.Done():
				}
			}}
		g.Go(func() error { return w.Run(gctx) })
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				stopDispatch()
				return nil
			case <-hup:
				reload(gctx, "sighup")
			case paths := <-changed:
				log.Info("config or policies changed on disk; reloading", "paths", paths)
				reload(gctx, "watch")
			}
		}
	})

	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	ready.Store(true)
	log.Info("sendguard serving", "grpc_addr", grpcLis.Addr().String(), "admin_addr", adminLis.Addr().String(),
		"instances", len(a.cfg.Instances), "policies", a.engine.Source(), "watch", a.cfg.Reload.Watching(), "watch_interval", a.cfg.Reload.WatchInterval.String())
	err = g.Wait()
	if dlog != nil {
		// Every Check has returned: write what the log holds.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		if ferr := dlog.Close(fctx); ferr != nil {
			log.Error("decision log not flushed", "err", ferr)
		}
		cancel()
	}
	log.Info("sendguard stopped", "decision_log_dropped", logDropped(dlog))
	return err
}
