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
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/authz"
	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/admin"
	"github.com/sendguard/sendguard/internal/config"
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
}

// stateStore is the state sendguard serves from: what the decision and the
// admin API use, and Close.
type stateStore interface {
	Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error)
	TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error)
	Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error)
	ResetViolations(ctx context.Context, instance string) error
	Usage(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error)
	Suppressed(ctx context.Context, instance, phone string) (bool, error)
	Suppression(ctx context.Context, instance, phone string) (store.Suppression, error)
	PutSuppression(ctx context.Context, s store.Suppression) error
	DeleteSuppression(ctx context.Context, instance, phone string) error
	Suppressions(ctx context.Context, instance string) ([]store.Suppression, error)
	Paused(ctx context.Context, instance string) (bool, error)
	SetPaused(ctx context.Context, instance string, paused bool) error
	events.Outbox
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
		return openEmbedded(cfg.Store.Path, cal, reset, log)
	}
	return openRedis(ctx, cfg, cal, getenv)
}

// openEmbedded opens the embedded store. A damaged file is an error (the
// process exits non-zero) unless reset, `serve --store-reset`, asks by name
// to move it aside and start with empty state. reset on a healthy file does
// nothing, so a flag left in a manifest cannot wipe quotas at every restart.
func openEmbedded(path string, cal limiter.Calendar, reset bool, log *slog.Logger) (stateStore, error) {
	st, err := store.OpenEmbedded(path, store.EmbeddedOptions{Calendar: cal})
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
	return store.OpenEmbedded(path, store.EmbeddedOptions{Calendar: cal})
}

// build validates the config and builds every part, without listening.
func build(ctx context.Context, f flags, log *slog.Logger, getenv func(string) string) (*app, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	adminToken, err := cfg.AdminToken(getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", f.config, err)
	}
	models, err := loadModels(cfg)
	if err != nil {
		return nil, err
	}
	// The probes of the policy tree run through the scanner real sends use,
	// the content model included.
	scanner := risk.New(risk.Options{
		Vocabulary: new(risk.DefaultVocabulary().Merge(cfg.Risk.Extra)),
		Shorteners: append(append([]string(nil), risk.DefaultShorteners...), cfg.Risk.Shorteners...),
		Model:      models.outbound,
	})
	engine, err := policy.New(ctx, policy.Options{Dir: f.policies, Scan: scanner.Scan})
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	phones, err := phone.New(phone.Options{DefaultRegion: cfg.Request.DefaultRegion})
	if err != nil {
		return nil, err
	}
	cal := limiter.Calendar{Loc: cfg.Location()}
	var st stateStore = store.NewMemory(cal) // config check validates without touching state
	if !f.checkOnly {
		st, err = openStore(ctx, cfg, cal, getenv, f.storeReset, log)
	}
	if err != nil {
		phones.Close()
		return nil, err
	}

	var entries []keys.Entry
	for _, a := range cfg.Accounts {
		for _, k := range a.Keys {
			entries = append(entries, keys.Entry{SHA256: strings.ToLower(k.SHA256), Key: keys.Key{ID: k.ID, Account: a.ID, Revoked: k.Revoked}})
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
		// file pauses the instance again after a restart.
		if in.Paused && !f.readOnly {
			if err := st.SetPaused(ctx, in.ID, true); err != nil {
				st.Close()
				return nil, fmt.Errorf("seed pause of %s: %w", in.ID, err)
			}
		}
	}
	for i, s := range cfg.Suppressions {
		e164, ok := phones.E164(s.Phone)
		if !ok {
			return nil, fmt.Errorf("config: suppressions[%d]: %q is not a valid phone number", i, s.Phone)
		}
		if f.readOnly {
			continue
		}
		// A suppression already in the store (from an earlier start, or
		// changed since) is kept as it is.
		if _, err := st.Suppression(ctx, s.Instance, e164); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			st.Close()
			return nil, fmt.Errorf("seed suppression %d: %w", i, err)
		}
		err := st.PutSuppression(ctx, store.Suppression{Instance: s.Instance, Phone: e164, Reason: s.Reason, Source: "config", CreatedAt: time.Now().UTC()})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("seed suppression %d: %w", i, err)
		}
	}
	routes := make([]decision.Route, len(cfg.SendRoutes))
	for i, r := range cfg.SendRoutes {
		routes[i] = decision.Route{Method: strings.ToUpper(r.Method), Path: r.Path}
	}
	receivers := make([]events.Receiver, len(cfg.Events.Receivers))
	for i, r := range cfg.Events.Receivers {
		secret := r.ReceiverSecret(getenv)
		if secret == "" && !f.checkOnly {
			st.Close()
			return nil, fmt.Errorf("events receiver %s: the secret variable %s is empty", r.Name, r.SecretEnv)
		}
		receivers[i] = events.Receiver{Name: r.Name, URL: r.URL, Secret: []byte(secret)}
	}
	disp := &events.Dispatcher{Outbox: st, Receivers: receivers, RetryFor: cfg.Events.RetryFor, Log: log}
	detector := models.detector(cfg)
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
			st.Close()
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
		Inbound: &decision.Inbound{Routes: inRoutes, Recorder: recorder,
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
	})
	if err != nil {
		return nil, err
	}
	return &app{
		cfg: cfg, engine: engine, decider: d, store: st, phones: phones, dispatcher: disp, scanner: scanner,
		admin: admin.Options{
			Inbound:   recorder.Record,
			Token:     adminToken,
			Instances: adminInstances,
			State:     st,
			Phones:    phones,
			Calendar:  cal,
			Log:       log,
			Shadow:    cfg.Shadow,
		},
	}, nil
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

// serve runs the gRPC and admin servers until ctx is done, then shuts both
// down gracefully. grpc.health.v1 reports NOT_SERVING until everything is
// built and listening, and again while shutting down.
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
	defer a.phones.Close()
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

	grpcLis, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("listen grpc: %w", err)
	}
	adminLis, err := net.Listen("tcp", adminAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("listen admin: %w", err)
	}

	gs := grpc.NewServer()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	dlog, err := openDecisionLog(a.cfg, a.engine, getenv, stdout, reg, log)
	if err != nil {
		grpcLis.Close()
		adminLis.Close()
		return err
	}
	var decider interface {
		Decide(ctx context.Context, r decision.Request) (decision.Result, error)
	} = a.decider
	if dlog != nil {
		decider = decisionlog.Wrap(a.decider, dlog)
	}
	srv := authz.NewServer(decider, log).WithMetrics(reg)
	authv3.RegisterAuthorizationServer(gs, srv)
	a.admin.Panics = srv.Panics("admin")
	a.admin.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	healthpb.RegisterHealthServer(gs, hs)

	var ready atomic.Bool
	a.admin.Ready = ready.Load
	hsrv := &http.Server{Handler: admin.Handler(a.admin), ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gs.Serve(grpcLis) })
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
		return nil
	})

	// Events: deliver the outbox (including what a previous run left).
	delivered := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_events_delivered_total", Help: "Event deliveries acknowledged by a receiver."}, []string{"receiver"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_events_failed_total", Help: "Event delivery attempts that failed (retried)."}, []string{"receiver"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_events_dropped_total", Help: "Events given up on after events.retry_for."}, []string{"receiver"})
	reg.MustRegister(delivered, failed, dropped)
	a.dispatcher.Delivered = func(r string) { delivered.WithLabelValues(r).Inc() }
	a.dispatcher.Failed = func(r string) { failed.WithLabelValues(r).Inc() }
	a.dispatcher.Dropped = func(r string) { dropped.WithLabelValues(r).Inc() }
	g.Go(func() error { return a.dispatcher.Run(gctx) })

	// SIGHUP re-reads, validates and re-prepares the policies; an edit
	// that does not compile, whose data does not match its schema, or whose
	// probes are answered otherwise than expected is logged and the running
	// policies stay in force. sendguard_policy_reloads_total counts both
	// outcomes, so a refused edit can be alerted on.
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendguard_policy_reloads_total", Help: "SIGHUP policy reloads, by result: applied, or refused (the running policies stay)."}, []string{"result"})
	reg.MustRegister(reloads)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				if err := a.engine.Reload(gctx); err != nil {
					reloads.WithLabelValues("refused").Inc()
					log.Error("policy reload failed; keeping the running policies", "err", err)
					continue
				}
				reloads.WithLabelValues("applied").Inc()
				memo, fields := a.engine.Memoized()
				log.Info("policies reloaded", "policies", a.engine.Source(), "probes", len(a.engine.Probes()), "memoized", memo, "memo_key", fields)
			}
		}
	})

	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	ready.Store(true)
	log.Info("sendguard serving", "grpc_addr", grpcLis.Addr().String(), "admin_addr", adminLis.Addr().String(),
		"instances", len(a.cfg.Instances), "policies", a.engine.Source())
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
