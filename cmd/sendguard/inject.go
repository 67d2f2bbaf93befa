package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sendguard/sendguard/internal/inject"
	"github.com/sendguard/sendguard/internal/webhookcert"
)

const injectUsage = `usage:
  sendguard inject -f FILE|- [options]       print the manifests with sendguard injected
  sendguard inject serve --tls-cert FILE --tls-key FILE [--addr :9443] [options]
  sendguard inject serve --self-signed-secret NS/NAME --webhook-config NAME --dns-names N,... [options]
                        keep its own CA and serving certificate in that Secret
                        and the CA in the configuration's caBundle (rotated
                        before expiry)
  inject serve talks to the API server as its pod's service account
  (--kube-api, --kube-token-file and --kube-ca-file override): for its
  certificates, and to read the workload of a scale or an HPA
options:
  --classic             sidecars as ordinary containers (Kubernetes before 1.29)
  --sendguard-image I   --envoy-image I   --config-map NAME (default sendguard)
  --namespace NS        the injector's namespace, never injected
  --injector-version V  written to the sendguard.io/status annotation
  --per-pod-limits refuse|accept
                        a Deployment, StatefulSet or ReplicaSet (or its scale,
                        or an HPA) of more than one injected replica on the
                        embedded store, a DaemonSet on it, a Job or CronJob
                        running more than one pod at once on it, whose pod
                        template has no sendguard.io/per-pod-limits
                        annotation: refused (default) or accepted
serve only:
  --object-selector JSON
                        the pod webhook's objectSelector (a LabelSelector,
                        the chart's injector.objectSelector): workloads are
                        judged for per-pod limits only when their pod
                        template's labels match it
`

// injectCmd runs `sendguard inject`: manual injection of manifests, or the
// mutating admission webhook (`inject serve`). Both call internal/inject.
func injectCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	serving := len(args) > 0 && args[0] == "serve"
	name := "inject"
	if serving {
		name, args = "inject serve", args[1:]
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, injectUsage) }
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var o inject.Options
	fs.BoolVar(&o.Classic, "classic", env("SENDGUARD_INJECT_CLASSIC", "") == "true", "classic containers instead of native sidecars (env SENDGUARD_INJECT_CLASSIC=true)")
	fs.StringVar(&o.SendguardImage, "sendguard-image", env("SENDGUARD_INJECT_SENDGUARD_IMAGE", ""), "sendguard image (env SENDGUARD_INJECT_SENDGUARD_IMAGE)")
	fs.StringVar(&o.EnvoyImage, "envoy-image", env("SENDGUARD_INJECT_ENVOY_IMAGE", ""), "Envoy image (env SENDGUARD_INJECT_ENVOY_IMAGE)")
	fs.StringVar(&o.ConfigMap, "config-map", env("SENDGUARD_INJECT_CONFIG_MAP", ""), "config ConfigMap when a pod names none (env SENDGUARD_INJECT_CONFIG_MAP)")
	fs.StringVar(&o.Namespace, "namespace", env("SENDGUARD_INJECT_NAMESPACE", ""), "the injector's own namespace, never injected (env SENDGUARD_INJECT_NAMESPACE)")
	fs.StringVar(&o.Version, "injector-version", env("SENDGUARD_INJECT_VERSION", ""), "value of the sendguard.io/status annotation (env SENDGUARD_INJECT_VERSION)")
	fs.StringVar(&o.PerPodLimits, "per-pod-limits", env("SENDGUARD_INJECT_PER_POD_LIMITS", inject.PerPodRefuse), "refuse or accept more than one replica on the embedded store when the pod template does not say (env SENDGUARD_INJECT_PER_POD_LIMITS)")
	var file, addr, cert, key, level, objectSelector string
	var self selfSignedTLS
	if serving {
		fs.StringVar(&self.secret, "self-signed-secret", env("SENDGUARD_INJECT_SELF_SIGNED_SECRET", ""), "NAMESPACE/NAME of the Secret keeping a generated CA and serving certificate (env SENDGUARD_INJECT_SELF_SIGNED_SECRET)")
		fs.StringVar(&self.webhook, "webhook-config", env("SENDGUARD_INJECT_WEBHOOK_CONFIG", ""), "MutatingWebhookConfiguration whose caBundle gets the generated CA (env SENDGUARD_INJECT_WEBHOOK_CONFIG)")
		fs.StringVar(&self.dnsNames, "dns-names", env("SENDGUARD_INJECT_DNS_NAMES", ""), "comma-separated DNS names of the generated serving certificate (env SENDGUARD_INJECT_DNS_NAMES)")
		fs.StringVar(&self.api, "kube-api", env("SENDGUARD_INJECT_KUBE_API", ""), "API server URL (default: in-cluster)")
		fs.StringVar(&self.tokenFile, "kube-token-file", env("SENDGUARD_INJECT_KUBE_TOKEN_FILE", webhookcert.InClusterToken), "bearer token file for the API server")
		fs.StringVar(&self.caFile, "kube-ca-file", env("SENDGUARD_INJECT_KUBE_CA_FILE", webhookcert.InClusterCA), "CA of the API server")
		fs.DurationVar(&self.interval, "cert-check-interval", time.Hour, "how often the generated certificates are checked (and renewed when due)")
		fs.StringVar(&addr, "addr", env("SENDGUARD_INJECT_ADDR", ":9443"), "HTTPS listen address (env SENDGUARD_INJECT_ADDR)")
		fs.StringVar(&cert, "tls-cert", env("SENDGUARD_INJECT_TLS_CERT", ""), "serving certificate, PEM; re-read when it changes (env SENDGUARD_INJECT_TLS_CERT)")
		fs.StringVar(&key, "tls-key", env("SENDGUARD_INJECT_TLS_KEY", ""), "its private key, PEM (env SENDGUARD_INJECT_TLS_KEY)")
		fs.StringVar(&objectSelector, "object-selector", env("SENDGUARD_INJECT_OBJECT_SELECTOR", ""), "the pod webhook's objectSelector, a JSON LabelSelector: per-pod limits judge only workloads whose pod template matches it (env SENDGUARD_INJECT_OBJECT_SELECTOR)")
		fs.StringVar(&level, "log-level", env("SENDGUARD_LOG_LEVEL", "info"), "debug, info, warn or error (env SENDGUARD_LOG_LEVEL)")
	} else {
		fs.StringVar(&file, "f", "", "manifest file, or - for stdin")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.PerPodLimits != inject.PerPodRefuse && o.PerPodLimits != inject.PerPodAccept {
		return fmt.Errorf("--per-pod-limits %q: want %s or %s", o.PerPodLimits, inject.PerPodRefuse, inject.PerPodAccept)
	}
	if serving {
		sel, err := parseObjectSelector(objectSelector)
		if err != nil {
			return err
		}
		o.ObjectSelector = sel
		files, generated := cert != "" || key != "", self.secret != "" || self.webhook != ""
		switch {
		case files && generated:
			return errors.New("inject serve: --tls-cert/--tls-key or --self-signed-secret, not both")
		case generated:
			if err := self.check(); err != nil {
				return err
			}
		case cert == "" || key == "":
			return errors.New("inject serve needs --tls-cert and --tls-key (or --self-signed-secret and --webhook-config)")
		}
		log, err := newLogger(level, stderr)
		if err != nil {
			return err
		}
		if !generated {
			kp := &keyPair{cert: cert, key: key}
			if _, err := kp.get(nil); err != nil {
				return err
			}
			get, err := self.getter(getenv, log)
			if err != nil {
				return err
			}
			return serveWebhook(ctx, addr, kp.get, o, get, log)
		}
		m, err := self.manager(getenv, log)
		if err != nil {
			return err
		}
		if err := m.Ensure(ctx); err != nil {
			return fmt.Errorf("webhook certificate: %w", err)
		}
		rctx, stop := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() { m.Run(rctx, self.interval); close(renewed) }()
		defer func() { stop(); <-renewed }()
		return serveWebhook(ctx, addr, m.GetCertificate, o, apiGetter{m.Client}, log)
	}
	if file == "" {
		fmt.Fprint(stderr, injectUsage)
		return errors.New("inject needs -f FILE (or -f - for stdin)")
	}
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	_, err := inject.Manifests(in, stdout, o)
	return err
}

// selfSignedTLS is the configuration of --self-signed-secret, and the
// API server flags every `inject serve` uses (see getter).
type selfSignedTLS struct {
	secret, webhook, dnsNames string
	api, tokenFile, caFile    string
	interval                  time.Duration
}

func (s *selfSignedTLS) check() error {
	ns, name, ok := strings.Cut(s.secret, "/")
	switch {
	case !ok || ns == "" || name == "" || strings.Contains(name, "/"):
		return fmt.Errorf("--self-signed-secret %q: want NAMESPACE/NAME", s.secret)
	case s.webhook == "":
		return errors.New("--self-signed-secret needs --webhook-config (the MutatingWebhookConfiguration to give the CA)")
	case strings.TrimSpace(s.dnsNames) == "":
		return errors.New("--self-signed-secret needs --dns-names (the injector Service's names)")
	case s.interval <= 0:
		return fmt.Errorf("--cert-check-interval %v: want a positive duration", s.interval)
	}
	return nil
}

// getter is the webhook's API access with certificate files (cert-manager):
// the API server of --kube-api or of the pod's cluster. Outside a cluster
// and without --kube-api it is nil: the webhook then answers a scale or an
// HPA it must check with HTTP 500, and the failurePolicy decides.
func (s *selfSignedTLS) getter(getenv func(string) string, log *slog.Logger) (inject.Getter, error) {
	if s.api == "" && getenv("KUBERNETES_SERVICE_HOST") == "" {
		log.Warn("no API server (not in a cluster, no --kube-api): scales and HPAs of injected workloads are left to the webhook's failurePolicy")
		return nil, nil
	}
	c, err := webhookcert.NewClient(s.api, s.tokenFile, s.caFile, getenv)
	if err != nil {
		return nil, fmt.Errorf("inject serve reads workloads from the API server: %w", err)
	}
	return apiGetter{c}, nil
}

// apiGetter is inject.Getter over the API server.
type apiGetter struct{ c *webhookcert.Client }

func (g apiGetter) Get(ctx context.Context, path string, out any) error {
	err := g.c.Get(ctx, path, out)
	if webhookcert.IsNotFound(err) {
		return fmt.Errorf("%w: %w", inject.ErrNotFound, err)
	}
	return err
}

func (s *selfSignedTLS) manager(getenv func(string) string, log *slog.Logger) (*webhookcert.Manager, error) {
	c, err := webhookcert.NewClient(s.api, s.tokenFile, s.caFile, getenv)
	if err != nil {
		return nil, err
	}
	ns, name, _ := strings.Cut(s.secret, "/")
	var dns []string
	for _, n := range strings.Split(s.dnsNames, ",") {
		if n = strings.TrimSpace(n); n != "" {
			dns = append(dns, n)
		}
	}
	return &webhookcert.Manager{Client: c, Namespace: ns, Secret: name, Webhook: s.webhook, DNSNames: dns, Log: log}, nil
}

// serveWebhook serves the admission webhook on addr (POST /inject) and
// GET /healthz, over TLS with the certificates of getCert, until ctx ends;
// get reads workloads (nil: no API access).
func serveWebhook(ctx context.Context, addr string, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), o inject.Options, get inject.Getter, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/inject", inject.Webhook(o, get, log))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Info("sendguard injector listening", "addr", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// keyPair re-reads the certificate files when their modification time
// changes (cert-manager and kubelet rotate the mounted Secret in place).
type keyPair struct {
	cert, key string
	mu        sync.Mutex
	mod       time.Time
	current   *tls.Certificate
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var mod time.Time
	for _, p := range []string{k.cert, k.key} {
		st, err := os.Stat(p)
		if err != nil {
			if k.current != nil {
				return k.current, nil // mid-rotation: keep serving the last pair
			}
			return nil, fmt.Errorf("tls: %w", err)
		}
		if st.ModTime().After(mod) {
			mod = st.ModTime()
		}
	}
	if k.current != nil && mod.Equal(k.mod) {
		return k.current, nil
	}
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if k.current != nil {
			return k.current, nil
		}
		return nil, fmt.Errorf("tls: %w", err)
	}
	k.current, k.mod = &c, mod
	return k.current, nil
}

// parseObjectSelector reads --object-selector: a metav1.LabelSelector in
// JSON (unknown fields refused). Empty, or a selector with no
// requirements: nil, every template.
func parseObjectSelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ls metav1.LabelSelector
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ls); err != nil {
		return nil, fmt.Errorf("--object-selector %q: %w", s, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("--object-selector %q: more than one JSON value", s)
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil, fmt.Errorf("--object-selector %q: %w", s, err)
	}
	if sel.Empty() {
		return nil, nil
	}
	return sel, nil
}
