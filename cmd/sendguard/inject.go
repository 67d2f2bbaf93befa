package main

import (
	"context"
	"crypto/tls"
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

	"github.com/sendguard/sendguard/internal/inject"
)

const injectUsage = `usage:
  sendguard inject -f FILE|- [options]       print the manifests with sendguard injected
  sendguard inject serve --tls-cert FILE --tls-key FILE [--addr :9443] [options]
options:
  --classic             sidecars as ordinary containers (Kubernetes before 1.29)
  --sendguard-image I   --envoy-image I   --config-map NAME (default sendguard)
  --namespace NS        the injector's namespace, never injected
  --injector-version V  written to the sendguard.io/status annotation
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
	var file, addr, cert, key, level string
	if serving {
		fs.StringVar(&addr, "addr", env("SENDGUARD_INJECT_ADDR", ":9443"), "HTTPS listen address (env SENDGUARD_INJECT_ADDR)")
		fs.StringVar(&cert, "tls-cert", env("SENDGUARD_INJECT_TLS_CERT", ""), "serving certificate, PEM; re-read when it changes (env SENDGUARD_INJECT_TLS_CERT)")
		fs.StringVar(&key, "tls-key", env("SENDGUARD_INJECT_TLS_KEY", ""), "its private key, PEM (env SENDGUARD_INJECT_TLS_KEY)")
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
	if serving {
		if cert == "" || key == "" {
			return errors.New("inject serve needs --tls-cert and --tls-key")
		}
		log, err := newLogger(level, stderr)
		if err != nil {
			return err
		}
		return serveWebhook(ctx, addr, cert, key, o, log)
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

// serveWebhook serves the admission webhook on addr (POST /inject) and
// GET /healthz, over TLS from cert and key, until ctx ends.
func serveWebhook(ctx context.Context, addr, cert, key string, o inject.Options, log *slog.Logger) error {
	kp := &keyPair{cert: cert, key: key}
	if _, err := kp.get(nil); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/inject", inject.Webhook(o, log))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get},
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
