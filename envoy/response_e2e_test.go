package envoy_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/fakesender"
)

// senderFault makes the fake sender fail a request whose message names a
// fault: "fault:500", "fault:503", "fault:422", "fault:reset", "fault:hang".
func senderFault(r fakesender.Request) fakesender.Fault {
	_, rest, ok := bytes.Cut(r.Body, []byte("fault:"))
	if !ok {
		return fakesender.Fault{}
	}
	switch {
	case bytes.HasPrefix(rest, []byte("reset")):
		return fakesender.Fault{Reset: true}
	case bytes.HasPrefix(rest, []byte("hang")):
		return fakesender.Fault{Hang: true}
	case bytes.HasPrefix(rest, []byte("slow")):
		// Slower than ext_proc's gRPC timeout: the stream must open at
		// the response, not at the request.
		return fakesender.Fault{Status: 500, Body: senderFaultBody(500), Delay: 1200 * time.Millisecond}
	}
	var st int
	fmt.Sscanf(string(rest), "%d", &st)
	return fakesender.Fault{Status: st, Body: fmt.Sprintf(`{"sender_error":"upstream %d","detail":"خطأ داخلي"}`, st)}
}

func senderFaultBody(st int) string {
	return fmt.Sprintf(`{"sender_error":"upstream %d","detail":"خطأ داخلي"}`, st)
}

// TestResponsePath: through the real Envoy, an allowed send the sender
// fails (5xx, reset, hang) answers the documented 502 gateway_send_failed
// JSON byte for byte with the decision id; a 200 and a 4xx pass unchanged.
func TestResponsePath(t *testing.T) {
	s := startStackFault(t, senderFault, "")
	failed := catalog.Body(catalog.GatewaySendFailed, catalog.Details{})

	check502 := func(t *testing.T, what string, r reply) {
		t.Helper()
		if r.status != 502 || !bytes.Equal(r.body, failed) {
			t.Errorf("%s: %d %s\nwant 502 %s", what, r.status, r.body, failed)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content-type = %q, want application/json", what, ct)
		}
		if id := r.header.Values("X-Sendguard-Decision-Id"); len(id) != 1 || id[0] == "" || id[0] == "forged" {
			t.Errorf("%s: x-sendguard-decision-id = %q, want exactly sendguard's", what, id)
		}
	}

	for _, fault := range []string{"500", "502", "503", "504", "slow", "reset", "hang"} {
		t.Run("sender "+fault, func(t *testing.T) {
			before := s.rec.Len()
			r := s.send("key-demo", sendBody("inst_12345", recipient, "Your order shipped fault:"+fault, "transactional"))
			check502(t, "sender "+fault, r)
			if got := s.rec.Len() - before; got != 1 {
				t.Errorf("the sender received %d requests, want 1 (never retried)", got)
			}
		})
	}

	t.Run("a client's forged decision id is neither kept nor needed", func(t *testing.T) {
		r := s.do("POST", "/api/send-message", map[string]string{
			"Authorization": "Bearer key-demo", "Content-Type": "application/json", "X-Sendguard-Decision-Id": "forged",
		}, []byte(sendBody("inst_12345", recipient, "Your order shipped fault:500", "transactional")))
		check502(t, "forged id, sender 500", r)
		got := s.rec.Requests()
		if v := got[len(got)-1].Header.Get("X-Sendguard-Decision-Id"); v != r.header.Get("X-Sendguard-Decision-Id") {
			t.Errorf("the sender saw decision id %q, the client %q", v, r.header.Get("X-Sendguard-Decision-Id"))
		}
	})

	t.Run("a 200 passes unchanged", func(t *testing.T) {
		n := s.rec.Len() + 1
		r := s.send("key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
		if want := fmt.Sprintf(`{"success":true,"message_id":"msg_%d","status":"queued"}`, n); r.status != 200 || string(r.body) != want {
			t.Errorf("sender 200: %d %s, want 200 %s", r.status, r.body, want)
		}
	})

	t.Run("a 4xx of the sender passes unchanged", func(t *testing.T) {
		r := s.send("key-demo", sendBody("inst_12345", recipient, "Your order shipped fault:422", "transactional"))
		if want := senderFaultBody(422); r.status != 422 || string(r.body) != want {
			t.Errorf("sender 422: %d %s, want 422 %s", r.status, r.body, want)
		}
		if r.header.Get("X-Sendguard-Decision-Id") == "" {
			t.Error("sender 422: no x-sendguard-decision-id")
		}
	})

	t.Run("a 5xx on a path that is not a send passes unchanged, forged id or not", func(t *testing.T) {
		r := s.do("POST", "/api/other", map[string]string{"X-Sendguard-Decision-Id": "forged"}, []byte(`{"m":"fault:500"}`))
		if want := senderFaultBody(500); r.status != 500 || string(r.body) != want {
			t.Errorf("POST /api/other, sender 500: %d %s, want 500 %s", r.status, r.body, want)
		}
	})

	t.Run("32 concurrent sends, half failing", func(t *testing.T) {
		texts := []string{"تم شحن طلبك رقم ٢٠٤١", "आपका ऑर्डर भेज दिया गया है", "Siparişiniz kargoya verildi 📦", "Café naïve ré\u0301sumé"}
		type result struct {
			fail bool
			r    reply
		}
		out := make([]result, 32)
		var wg sync.WaitGroup
		for i := range out {
			wg.Go(func() {
				msg := fmt.Sprintf("%s #%d", texts[i%len(texts)], i)
				fail := i%2 == 1
				if fail {
					msg += []string{" fault:500", " fault:503"}[i/2%2]
				}
				out[i] = result{fail, s.send("key-demo", sendBody("inst_12345", fmt.Sprintf("+9665012345%02d", i), msg, "transactional"))}
			})
		}
		wg.Wait()
		for i, o := range out {
			switch {
			case o.fail:
				check502(t, fmt.Sprintf("send %d (failing)", i), o.r)
			case o.r.status != 200 || !bytes.Contains(o.r.body, []byte(`"status":"queued"`)) || o.r.header.Get("X-Sendguard-Decision-Id") == "":
				t.Errorf("send %d (delivered): %d %s %v, want the sender's 200", i, o.r.status, o.r.body, o.r.header)
			}
		}
	})

	t.Run("only a 5xx asks sendguard", func(t *testing.T) {
		stats, err := get(fmt.Sprintf("http://127.0.0.1:%d/stats?filter=ext_proc.streams_started", s.envoyAdmin))
		if err != nil {
			t.Fatal(err)
		}
		// 7 single failures, the forged id, 16 of the 32, and the 500 of
		// POST /api/other; never the 200s nor the 422.
		if want := "http.ingress.ext_proc.streams_started: 25\n"; !strings.Contains(stats, want) {
			t.Errorf("envoy stats %q, want %q", stats, want)
		}
	})

	t.Run("the sender's statuses are counted, not shown", func(t *testing.T) {
		m, err := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.admin))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`sendguard_send_failures_total{by="sender",status="500"} 11`,
			`sendguard_send_failures_total{by="sender",status="502"} 1`,
			`sendguard_send_failures_total{by="sender",status="503"} 9`,
			`sendguard_send_failures_total{by="sender",status="504"} 1`,
			`sendguard_send_failures_total{by="envoy",status="502"} 2`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %q; have:\n%s", want, grepLines(m, "sendguard_send_failures_total"))
			}
		}
	})
}

// TestResponsePathFailsOpen: with sendguard's ext_proc service off, Envoy's
// ext_proc filter fails open: the sender's answer reaches the client as it
// is (the message may have been delivered), and Envoy counts the miss.
func TestResponsePathFailsOpen(t *testing.T) {
	s := startStackFault(t, senderFault, "response: {replace_failures: false}\n")
	r := s.send("key-demo", sendBody("inst_12345", recipient, "Your order shipped fault:500", "transactional"))
	if want := senderFaultBody(500); r.status != 500 || string(r.body) != want {
		t.Errorf("ext_proc down, sender 500: %d %s, want the sender's 500 %s", r.status, r.body, want)
	}
	if r := s.send("key-demo", sendBody("inst_12345", recipient, okMessage, "transactional")); r.status != 200 {
		t.Errorf("ext_proc down, sender 200: %d %s", r.status, r.body)
	}
	stats, err := get(fmt.Sprintf("http://127.0.0.1:%d/stats?filter=ext_proc", s.envoyAdmin))
	if err != nil {
		t.Fatal(err)
	}
	// The 200 never asked (only a 5xx does); the 500 asked and was let through.
	for _, want := range []string{"http.ingress.ext_proc.failure_mode_allowed: 1\n", "http.ingress.ext_proc.streams_started: 1\n"} {
		if !strings.Contains(stats, want) {
			t.Errorf("envoy ext_proc stats:\n%s\nwant %q", stats, want)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
