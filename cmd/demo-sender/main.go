// Command demo-sender is a stand-in for the sender service behind sendguard,
// for the demo stack: it answers every request like the sender and logs it
// on one line to stderr, with the x-sendguard-* headers Envoy added.
//
//	demo-sender [-listen 127.0.0.1:8080]
//
// It stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sendguard/sendguard/internal/fakesender"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-sender:", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds how long in-flight requests may finish on stop.
const shutdownTimeout = 5 * time.Second

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-sender", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           &fakesender.Recorder{OnRequest: logRequest(log)},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("demo sender listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("demo sender stopping")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// logRequest logs one line per request: method, path, the headers sendguard
// adds, and the body.
func logRequest(log *slog.Logger) func(fakesender.Request) {
	return func(r fakesender.Request) {
		log.Info("received",
			"method", r.Method,
			"path", r.Path,
			"decision_id", r.Header.Get("X-Sendguard-Decision-Id"),
			"purpose", r.Header.Get("X-Sendguard-Purpose"),
			"risk_score", r.Header.Get("X-Sendguard-Risk-Score"),
			"body", string(r.Body),
		)
	}
}
