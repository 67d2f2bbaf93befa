package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// HTTPOptions configure the HTTP sink.
type HTTPOptions struct {
	URL      string        // where batches are POSTed (an OPA collector's …/logs)
	Batch    int           // events per upload at most; default 500
	Interval time.Duration // a partial batch waits at most this long; default 5s
	Timeout  time.Duration // per upload; default 10s
	// MaxPending bounds the events held for a collector that does not
	// answer; beyond it the oldest batch is dropped and counted (Dropped).
	MaxPending int
	Labels     map[string]string // OPA's labels (app, version, …)
	Client     *http.Client      // default: a client with Timeout
	Dropped    interface{ Add(float64) }
	Log        *slog.Logger
	Now        func() time.Time
}

// httpSink uploads batches in OPA's decision-log format: POST with
// Content-Type application/json and Content-Encoding gzip, the body a
// gzipped JSON array of events
//
//	{"labels", "decision_id", "bundles": {"sendguard": {"revision"}},
//	 "path": "sendguard/decision/result", "input", "result", "timestamp",
//	 "metrics": {"timer_sendguard_store_ns", "timer_sendguard_decision_ns"}}
//
// where input is the decision-log line (the same fields, the same masking)
// and result is {"result", "code"}. A failed upload is retried at the next
// tick, oldest first, holding at most MaxPending events.
type httpSink struct {
	opts     HTTPOptions
	labels   []byte
	cur      []byte // the open batch: "[" and events so far
	n        int
	opened   time.Time
	pending  []batch
	held     int
	client   *http.Client
	lastFail time.Time
}

type batch struct {
	body []byte // gzipped
	n    int
}

// NewHTTPSink returns the HTTP sink.
func NewHTTPSink(opts HTTPOptions) Sink {
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 8192
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := opts.Client
	if c == nil {
		c = &http.Client{Timeout: opts.Timeout}
	}
	lb := []byte{'{'}
	for k, v := range opts.Labels {
		lb = appendStr(lb, k, v)
	}
	lb = append(lb, '}')
	return &httpSink{opts: opts, labels: lb, client: c}
}

func (s *httpSink) Add(line []byte, r *Record) error {
	if s.n == 0 {
		s.cur = append(s.cur[:0], '[')
		s.opened = s.opts.Now()
	} else {
		s.cur = append(s.cur, ',')
	}
	b := s.cur
	b = append(b, '{', '"', 'l', 'a', 'b', 'e', 'l', 's', '"', ':')
	b = append(b, s.labels...)
	b = appendStr(b, "decision_id", r.Result.ID)
	if r.Policy != "" {
		b = append(appendKey(b, "bundles"), `{"sendguard":{"revision":`...)
		b = appendString(b, r.Policy)
		b = append(b, '}', '}')
	}
	b = appendStr(b, "path", "sendguard/decision/result")
	b = append(appendKey(b, "input"), bytes.TrimSuffix(line, []byte{'\n'})...)
	b = append(appendKey(b, "result"), '{')
	b = appendStr(b, "result", recordResult(r))
	if r.Refund != nil {
		b = appendStr(b, "code", r.Refund.Result)
	} else if r.Err == nil && r.Result.Code != "" {
		b = appendStr(b, "code", string(r.Result.Code))
	}
	b = append(b, '}')
	b = appendTime(b, "timestamp", r.Time)
	b = append(appendKey(b, "metrics"), '{')
	b = appendInt(b, "timer_sendguard_store_ns", int64(r.Result.StoreTime))
	b = appendInt(b, "timer_sendguard_decision_ns", int64(r.Total))
	b = append(b, '}', '}')
	s.cur = b
	s.n++
	if s.n >= s.opts.Batch {
		if err := s.seal(); err != nil {
			return err
		}
		return s.upload()
	}
	return nil
}

func (s *httpSink) Idle() error { return nil }

// Tick seals a batch that has waited Interval and uploads what is pending
// (after a failure, at most once per Interval).
func (s *httpSink) Tick() error {
	now := s.opts.Now()
	if s.n > 0 && now.Sub(s.opened) >= s.opts.Interval {
		if err := s.seal(); err != nil {
			return err
		}
	}
	if len(s.pending) == 0 || now.Sub(s.lastFail) < s.opts.Interval {
		return nil
	}
	return s.upload()
}

// Close seals the open batch and tries every pending one once.
func (s *httpSink) Close() error {
	if s.n > 0 {
		if err := s.seal(); err != nil {
			return err
		}
	}
	if err := s.upload(); err != nil {
		return fmt.Errorf("%w (%d decision log events not delivered)", err, s.held)
	}
	return nil
}

func (s *httpSink) seal() error {
	s.cur = append(s.cur, ']')
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(s.cur); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	s.pending = append(s.pending, batch{body: buf.Bytes(), n: s.n})
	s.held += s.n
	s.n = 0
	for s.held > s.opts.MaxPending && len(s.pending) > 1 {
		old := s.pending[0]
		s.pending = s.pending[1:]
		s.held -= old.n
		if s.opts.Dropped != nil {
			s.opts.Dropped.Add(float64(old.n))
		}
		s.opts.Log.Warn("decision log: collector behind, oldest batch dropped", "events", old.n)
	}
	return nil
}

// upload posts the pending batches oldest first, stopping at a failure.
func (s *httpSink) upload() error {
	for len(s.pending) > 0 {
		b := s.pending[0]
		if err := s.post(b.body); err != nil {
			s.lastFail = s.opts.Now()
			return err
		}
		s.pending = s.pending[1:]
		s.held -= b.n
	}
	return nil
}

func (s *httpSink) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("decision log upload: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("decision log upload: %s answered %s", s.opts.URL, resp.Status)
	}
	return nil
}
