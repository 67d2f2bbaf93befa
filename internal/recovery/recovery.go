// Package recovery keeps an HTTP handler's panic from taking the process
// down: the admin API and the operator console share it.
package recovery

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// Options say how Handler reports a panic.
type Options struct {
	Log    *slog.Logger       // the panic and its stack are logged here (nil: slog.Default)
	What   string             // names the handler in the log line, e.g. "admin handler"
	Panics interface{ Inc() } // counts recovered panics; nil: not counted
	// Fail answers the request when nothing was written yet.
	Fail func(w http.ResponseWriter)
}

// Handler runs h and answers a panic in it with o.Fail, logs it with its
// stack and counts it. When h had already started its response, the
// connection is cut instead (http.ErrAbortHandler), so that no client
// reads half a body as a whole one. http.ErrAbortHandler itself passes
// through.
func Handler(h http.Handler, o Options) http.Handler {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &recordingWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.ErrorContext(r.Context(), o.What+" panicked", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if o.Panics != nil {
				o.Panics.Inc()
			}
			if rw.wrote {
				panic(http.ErrAbortHandler)
			}
			o.Fail(w)
		}()
		h.ServeHTTP(rw, r)
	})
}

// recordingWriter notes whether the response has started.
type recordingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *recordingWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (flush,
// deadlines).
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
