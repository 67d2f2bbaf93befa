package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/decisionlog"
	"github.com/sendguard/sendguard/internal/policy"
)

// openDecisionLog starts the decision log the config asks for, or returns
// nil when decision_log.sink is empty. Its metrics are registered on reg:
//
//	sendguard_decision_log_dropped_total  records dropped: the buffer was full, or
//	                                      the HTTP collector fell behind
//	sendguard_decision_log_errors_total   sink writes that failed
//
// observe, when set, sees each record after the sink (decisionlog.Options.Observe).
func openDecisionLog(cfg *config.Config, engine *policy.Engine, getenv func(string) string, stdout io.Writer, reg prometheus.Registerer, log *slog.Logger, observe func(*decisionlog.Record)) (*decisionlog.Logger, error) {
	dl := cfg.DecisionLog
	if dl.Sink == "" {
		return nil, nil
	}
	var key []byte
	if dl.Phone == decisionlog.PhoneHMAC {
		key = []byte(getenv(dl.PhoneKeyEnv))
		if len(key) == 0 {
			return nil, fmt.Errorf("decision_log: phones are hashed (phone: hmac) but the key variable %s is empty", dl.PhoneKeyEnv)
		}
	}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "sendguard_decision_log_dropped_total",
		Help: "Decision log records dropped because the buffer was full (a slow or failing sink); decisions never wait for the log."})
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "sendguard_decision_log_errors_total",
		Help: "Decision log sink writes that failed."})
	reg.MustRegister(dropped, failed)
	var sink decisionlog.Sink
	switch dl.Sink {
	case "stdout":
		sink = decisionlog.NewWriterSink(stdout)
	case "file":
		fs, err := decisionlog.NewFileSink(dl.File.Path, int64(dl.File.MaxSizeMB)<<20, dl.File.Keep)
		if err != nil {
			return nil, err
		}
		sink = fs
	case "http":
		sink = decisionlog.NewHTTPSink(decisionlog.HTTPOptions{URL: dl.HTTP.URL, Batch: dl.HTTP.Batch, Interval: dl.HTTP.Interval,
			Timeout: dl.HTTP.Timeout, MaxPending: dl.Buffer, Labels: map[string]string{"app": "sendguard", "version": currentVersion().Version}, Dropped: dropped, Log: log})
	default:
		return nil, fmt.Errorf("decision_log.sink %q", dl.Sink)
	}
	l, err := decisionlog.New(decisionlog.Options{
		Sink: sink, Buffer: dl.Buffer, Phone: dl.Phone, PhoneKey: key, Message: dl.Message,
		PolicyRevision: engine.Revision, ConfigRevision: cfg.Revision,
		Dropped: dropped, Errors: failed, Log: log, Observe: observe,
	})
	if err != nil {
		sink.Close()
		return nil, err
	}
	log.Info("decision log on", "sink", dl.Sink, "phone", dl.Phone, "message", dl.Message, "buffer", dl.Buffer)
	return l, nil
}

// logDropped reports how many records l dropped (0 when l is nil), for the
// shutdown log line.
func logDropped(l *decisionlog.Logger) int64 {
	if l == nil {
		return 0
	}
	return l.Dropped()
}
