// Package fakesender is a stand-in for the sender service that sendguard
// protects: an http.Handler that records every request it receives and
// answers like the sender does, for tests and the demo stack.
package fakesender

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// MaxBodyBytes is the most of a request body the Recorder reads. A longer
// body is recorded truncated and answered 413; a body that fails to read is
// recorded as far as it was read and answered 400.
const MaxBodyBytes = 1 << 20

// Request is one request as the Recorder received it.
type Request struct {
	Method string
	Path   string
	Query  string      // the raw query, without '?'
	Header http.Header // a clone of the request's header
	Body   []byte
	At     time.Time // when the Recorder had read it in full
}

func (r Request) clone() Request {
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// Recorder records every request it serves and answers it like the sender:
// 200 with the sender's JSON acknowledgement
//
//	{"success":true,"message_id":"msg_<n>","status":"queued"}
//
// where n counts the requests received since the last Reset, starting at 1,
// or {"success":true,"status":"ok"} for GET /api/status. Only a body it
// cannot read (see MaxBodyBytes) and a request its Fault fails get another
// answer.
//
// The zero value is ready to use. A Recorder is safe for concurrent use; it
// must not be copied after first use.
type Recorder struct {
	// OnRequest, when set, is called with a copy of every request after it
	// is recorded and before it is answered. It may be called concurrently.
	// Set it before the Recorder serves its first request.
	OnRequest func(Request)

	// Fault, when set, is called with a copy of every readable request
	// after OnRequest; a non-zero Fault it returns is how the request is
	// answered instead of the acknowledgement (it is recorded all the
	// same). It may be called concurrently. Set it before the Recorder
	// serves its first request.
	Fault func(Request) Fault

	mu   sync.Mutex
	reqs []Request
}

// ServeHTTP records r and answers it.
func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	got := Request{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.RawQuery,
		Header: r.Header.Clone(),
		Body:   body,
	}
	rec.mu.Lock()
	got.At = time.Now() // under the lock, so At follows arrival order
	rec.reqs = append(rec.reqs, got)
	n := len(rec.reqs)
	rec.mu.Unlock()
	if rec.OnRequest != nil {
		rec.OnRequest(got.clone())
	}

	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, `{"success":false,"error":"request_body_too_large"}`)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"success":false,"error":"unreadable_request_body"}`)
		return
	}
	if rec.Fault != nil {
		if f := rec.Fault(got.clone()); f != (Fault{}) {
			f.answer(w, r)
			return
		}
	}
	if r.Method == http.MethodGet && r.URL.Path == "/api/status" {
		io.WriteString(w, `{"success":true,"status":"ok"}`)
		return
	}
	fmt.Fprintf(w, `{"success":true,"message_id":"msg_%d","status":"queued"}`, n)
}

// Fault is a failing answer of the sender (see Recorder.Fault): set one of
// Status (with Body, and Delay for a slow one), Reset or Hang.
type Fault struct {
	// Status answers this status with Body (content-type application/json).
	Status int
	Body   string
	// Reset closes the connection without answering, with an RST (SO_LINGER 0).
	Reset bool
	// Hang answers nothing until the client goes away.
	Hang bool
	// Delay, with Status, waits this long first (or until the client goes
	// away): a slow sender.
	Delay time.Duration
}

func (f Fault) answer(w http.ResponseWriter, r *http.Request) {
	switch {
	case f.Reset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler) // HTTP/2: aborts the stream
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
	case f.Hang:
		<-r.Context().Done()
	default:
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
	}
}

// Len reports how many requests were received since the last Reset.
func (rec *Recorder) Len() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// Requests returns a copy of the requests received since the last Reset, in
// arrival order. Changing it does not change the Recorder.
func (rec *Recorder) Requests() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]Request, len(rec.reqs))
	for i, r := range rec.reqs {
		out[i] = r.clone()
	}
	return out
}

// Reset forgets every recorded request; message ids start again at msg_1.
func (rec *Recorder) Reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = nil
}
