package fakesender

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func post(t *testing.T, url, body string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestRecordsAndAnswers(t *testing.T) {
	var rec Recorder
	srv := httptest.NewServer(&rec)
	defer srv.Close()

	start := time.Now()
	for i, body := range []string{`{"phone":"+966501234567"}`, `{"phone":"+966501234568"}`} {
		status, got, h := post(t, srv.URL+"/api/send-message?x=1", body, map[string]string{
			"X-Sendguard-Purpose": "transactional",
			"Authorization":       "Bearer k",
		})
		want := fmt.Sprintf(`{"success":true,"message_id":"msg_%d","status":"queued"}`, i+1)
		if status != 200 || got != want {
			t.Errorf("POST %d = %d %s, want 200 %s", i, status, got, want)
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content-type = %q", ct)
		}
	}
	resp, err := http.Get(srv.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"success":true,"status":"ok"}` {
		t.Errorf("GET /api/status = %d %s", resp.StatusCode, b)
	}

	if rec.Len() != 3 {
		t.Fatalf("Len = %d, want 3", rec.Len())
	}
	reqs := rec.Requests()
	first := reqs[0]
	if first.Method != "POST" || first.Path != "/api/send-message" || first.Query != "x=1" {
		t.Errorf("first = %s %s ? %s", first.Method, first.Path, first.Query)
	}
	if string(first.Body) != `{"phone":"+966501234567"}` {
		t.Errorf("first body = %s", first.Body)
	}
	if first.Header.Get("X-Sendguard-Purpose") != "transactional" || first.Header.Get("Authorization") != "Bearer k" {
		t.Errorf("first header = %v", first.Header)
	}
	if reqs[2].Method != "GET" || reqs[2].Path != "/api/status" || len(reqs[2].Body) != 0 {
		t.Errorf("third = %s %s %q", reqs[2].Method, reqs[2].Path, reqs[2].Body)
	}
	for i, r := range reqs {
		if r.At.Before(start) || r.At.After(time.Now()) || (i > 0 && r.At.Before(reqs[i-1].At)) {
			t.Errorf("request %d At = %v, out of order or range", i, r.At)
		}
	}

	rec.Reset()
	if rec.Len() != 0 || len(rec.Requests()) != 0 {
		t.Fatalf("after Reset: Len = %d", rec.Len())
	}
	if _, got, _ := post(t, srv.URL+"/api/send-message", "{}", nil); !strings.Contains(got, `"msg_1"`) {
		t.Errorf("after Reset the first id is not msg_1: %s", got)
	}
}

func TestZeroValueServesDirectly(t *testing.T) {
	var rec Recorder
	w := httptest.NewRecorder()
	rec.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/anything", strings.NewReader("hi")))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"msg_1"`) {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
	if r := rec.Requests(); len(r) != 1 || r[0].Method != "PUT" || string(r[0].Body) != "hi" {
		t.Errorf("recorded %+v", r)
	}
}

func TestConcurrentPosts(t *testing.T) {
	var rec Recorder
	var hooked sync.Map
	rec.OnRequest = func(r Request) { hooked.Store(string(r.Body), true) }
	srv := httptest.NewServer(&rec)
	defer srv.Close()

	const n = 200
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(srv.URL+"/api/send-message", "application/json", strings.NewReader(fmt.Sprint(i)))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ids <- string(b)
			_ = rec.Len() // reads race with writes
			_ = rec.Requests()
		})
	}
	wg.Wait()
	close(ids)

	if rec.Len() != n {
		t.Fatalf("Len = %d, want %d", rec.Len(), n)
	}
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("answer %s given twice", id)
		}
		seen[id] = true
	}
	bodies := map[string]bool{}
	for _, r := range rec.Requests() {
		bodies[string(r.Body)] = true
	}
	for i := range n {
		if _, ok := hooked.Load(fmt.Sprint(i)); !ok || !bodies[fmt.Sprint(i)] {
			t.Errorf("request %d missing (hook %v, recorded %v)", i, ok, bodies[fmt.Sprint(i)])
		}
	}
}

func TestRecordsClones(t *testing.T) {
	var rec Recorder
	req := httptest.NewRequest(http.MethodPost, "/api/send-message", strings.NewReader("body"))
	req.Header.Set("X-Test", "before")
	rec.ServeHTTP(httptest.NewRecorder(), req)

	// Changing the served request's header must not change the record.
	req.Header.Set("X-Test", "after")
	req.Header.Set("X-New", "1")
	got := rec.Requests()[0]
	if got.Header.Get("X-Test") != "before" || got.Header.Get("X-New") != "" {
		t.Fatalf("record follows the request's header: %v", got.Header)
	}

	// Changing what Requests returned must not change the record either.
	got.Header.Set("X-Test", "mutated")
	got.Body[0] = 'B'
	again := rec.Requests()[0]
	if again.Header.Get("X-Test") != "before" || string(again.Body) != "body" {
		t.Errorf("Requests shares state with the Recorder: %v %q", again.Header, again.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	var rec Recorder
	w := httptest.NewRecorder()
	big := bytes.Repeat([]byte("x"), MaxBodyBytes+10)
	rec.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/send-message", bytes.NewReader(big)))
	if w.Code != http.StatusRequestEntityTooLarge || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("oversized body = %d %s", w.Code, w.Body)
	}
	r := rec.Requests()
	if len(r) != 1 {
		t.Fatalf("oversized body recorded as %d requests", len(r))
	}
	if len(r[0].Body) > MaxBodyBytes {
		t.Errorf("recorded %d bytes, more than MaxBodyBytes", len(r[0].Body))
	}
}

func TestFaults(t *testing.T) {
	rec := Recorder{Fault: func(r Request) Fault {
		switch {
		case bytes.Contains(r.Body, []byte("500")):
			return Fault{Status: 500, Body: `{"oops":"سيرفر"}`}
		case bytes.Contains(r.Body, []byte("reset")):
			return Fault{Reset: true}
		case bytes.Contains(r.Body, []byte("hang")):
			return Fault{Hang: true}
		}
		return Fault{}
	}}
	srv := httptest.NewServer(&rec)
	defer srv.Close()

	if status, got, _ := post(t, srv.URL+"/api/send-message", `{"m":"500"}`, nil); status != 500 || got != `{"oops":"سيرفر"}` {
		t.Errorf("Fault{Status: 500} answered %d %s", status, got)
	}
	if status, got, _ := post(t, srv.URL+"/api/send-message", `{"m":"ok"}`, nil); status != 200 || !strings.Contains(got, `"msg_2"`) {
		t.Errorf("no fault answered %d %s, want the acknowledgement msg_2", status, got)
	}
	if _, err := http.Post(srv.URL+"/api/send-message", "application/json", strings.NewReader(`{"m":"reset"}`)); err == nil {
		t.Error("Fault{Reset: true}: the client got an answer, want a connection error")
	}
	c := http.Client{Timeout: 300 * time.Millisecond}
	if _, err := c.Post(srv.URL+"/api/send-message", "application/json", strings.NewReader(`{"m":"hang"}`)); err == nil {
		t.Error("Fault{Hang: true}: the client got an answer within its timeout")
	}
	if n := rec.Len(); n != 4 {
		t.Errorf("recorded %d requests, want 4 (faults are recorded)", n)
	}
}
