package config

import (
	"net/url"
	"time"
)

// DecisionLog configures the decision log: one JSON line per decision (see
// internal/decisionlog). Sink "" turns it off.
type DecisionLog struct {
	Sink string `yaml:"sink"` // "" (off), stdout, file or http
	// Phone is how a recipient appears: hmac (default: HMAC-SHA256 under
	// the key in PhoneKeyEnv), omit, or plain (E.164, for trials only).
	Phone       string `yaml:"phone"`
	PhoneKeyEnv string `yaml:"phone_key_env"` // default SENDGUARD_DECISION_LOG_KEY
	// Message includes the message text when true; omitted by default.
	Message bool `yaml:"message"`
	Buffer  int  `yaml:"buffer"` // decisions waiting for the sink; more are dropped and counted (default 8192)

	File DecisionLogFile `yaml:"file"`
	HTTP DecisionLogHTTP `yaml:"http"`
}

// DecisionLogFile is the file sink: size-based rotation keeping Keep old
// files (<path>.1 newest … <path>.<Keep>).
type DecisionLogFile struct {
	Path      string `yaml:"path"`        // required with sink: file
	MaxSizeMB int    `yaml:"max_size_mb"` // rotate when the file would pass this size (default 100)
	Keep      int    `yaml:"keep"`        // rotated files kept (default 5)
}

// DecisionLogHTTP is the HTTP sink: batches in OPA's decision-log upload
// format (a gzipped JSON array of events, POSTed), so an OPA log collector
// takes them.
type DecisionLogHTTP struct {
	URL      string        `yaml:"url"`      // required with sink: http
	Batch    int           `yaml:"batch"`    // events per upload at most (default 500)
	Interval time.Duration `yaml:"interval"` // upload at least this often when events wait (default 5s)
	Timeout  time.Duration `yaml:"timeout"`  // per upload (default 10s)
}

func (d *DecisionLog) applyDefaults() {
	if d.Phone == "" {
		d.Phone = "hmac"
	}
	if d.PhoneKeyEnv == "" {
		d.PhoneKeyEnv = "SENDGUARD_DECISION_LOG_KEY"
	}
	if d.Buffer == 0 {
		d.Buffer = 8192
	}
	if d.File.MaxSizeMB == 0 {
		d.File.MaxSizeMB = 100
	}
	if d.File.Keep == 0 {
		d.File.Keep = 5
	}
	if d.HTTP.Batch == 0 {
		d.HTTP.Batch = 500
	}
	if d.HTTP.Interval == 0 {
		d.HTTP.Interval = 5 * time.Second
	}
	if d.HTTP.Timeout == 0 {
		d.HTTP.Timeout = 10 * time.Second
	}
}

func (d *DecisionLog) validate(bad func(format string, args ...any)) {
	switch d.Sink {
	case "", "stdout":
	case "file":
		if d.File.Path == "" {
			bad("decision_log.file.path: required with sink: file")
		}
	case "http":
		if u, err := url.Parse(d.HTTP.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("decision_log.http.url %q: must be an http or https URL", d.HTTP.URL)
		}
	default:
		bad("decision_log.sink %q: must be stdout, file or http (or empty: off)", d.Sink)
	}
	switch d.Phone {
	case "hmac", "omit", "plain":
	default:
		bad("decision_log.phone %q: must be hmac, omit or plain", d.Phone)
	}
	if d.Buffer < 1 {
		bad("decision_log.buffer %d: must be at least 1", d.Buffer)
	}
	if d.File.MaxSizeMB < 1 {
		bad("decision_log.file.max_size_mb %d: must be at least 1", d.File.MaxSizeMB)
	}
	if d.File.Keep < 1 {
		bad("decision_log.file.keep %d: must be at least 1", d.File.Keep)
	}
	if d.HTTP.Batch < 1 {
		bad("decision_log.http.batch %d: must be at least 1", d.HTTP.Batch)
	}
	if d.HTTP.Interval < 0 || d.HTTP.Timeout < 0 {
		bad("decision_log.http: interval and timeout must be positive")
	}
}
