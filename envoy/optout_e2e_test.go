package envoy_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/events"
)

// eventReceiver is a customer's event webhook: it verifies signatures,
// records what it accepted, and can be taken down and brought back on the
// same port.
type eventReceiver struct {
	t    testing.TB
	port int
	srv  *http.Server
	mu   sync.Mutex
	got  []receivedEvent
	bad  int // deliveries with a bad signature
}

type receivedEvent struct {
	id   string
	body []byte
	ev   events.Recipient
}

func startEventReceiver(t testing.TB) *eventReceiver {
	r := &eventReceiver{t: t, port: freePort(t)}
	r.up()
	t.Cleanup(r.down)
	return r
}

func (r *eventReceiver) url() string {
	return fmt.Sprintf("http://127.0.0.1:%d/hooks/sendguard", r.port)
}

func (r *eventReceiver) up() {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !events.Verify([]byte("e2e-secret"), req.Header.Get(events.HeaderTimestamp), req.Header.Get(events.HeaderSignature), body, time.Now(), 5*time.Minute) {
			r.bad++
			w.WriteHeader(401)
			return
		}
		var ev events.Recipient
		json.Unmarshal(body, &ev)
		r.got = append(r.got, receivedEvent{req.Header.Get(events.HeaderEventID), body, ev})
	})}
	go r.srv.Serve(l)
}

func (r *eventReceiver) down() { r.srv.Close() }

// find returns the accepted events of kind for phone.
func (r *eventReceiver) find(kind, phone string) []receivedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedEvent
	for _, e := range r.got {
		if e.ev.Event == kind && e.ev.From == phone {
			out = append(out, e)
		}
	}
	return out
}

// The inbound webhook's signing secrets, as e2eConfig's variables hold
// them: the current one and the next (a rotation in progress).
const (
	inboundSecret     = "e2e-inbound-secret"
	inboundSecretNext = "e2e-inbound-secret-next"
)

// metaSign is Meta's X-Hub-Signature-256 of body: "sha256=" + hex
// HMAC-SHA256(secret, body).
func metaSign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func inboundBody(instance, from, text string) []byte {
	body, _ := json.Marshal(map[string]string{"instance_id": instance, "from": from, "message_text": text, "timestamp": "2026-05-08T10:00:00Z"})
	return body
}

// inbound posts a message to the webhook route through Envoy, signed as
// the webhook's sender (Meta) signs it.
func (s *stack) inbound(instance, from, text string) reply {
	s.t.Helper()
	body := inboundBody(instance, from, text)
	return s.inboundSigned(body, metaSign(inboundSecret, body))
}

// inboundSigned posts body to the webhook route through Envoy with sig as
// its X-Hub-Signature-256; none when sig is "".
func (s *stack) inboundSigned(body []byte, sig string) reply {
	s.t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if sig != "" {
		h["X-Hub-Signature-256"] = sig
	}
	return s.do("POST", "/webhooks/inbound", h, body)
}

// TestOptOutEndToEnd: inbound STOP through Envoy's webhook route suppresses
// the recipient (the sender never sees the next send), START lifts it, the
// events reach the receiver signed, a receiver outage only delays them, and
// a SIGKILL right after an acknowledged STOP loses neither the suppression
// nor the event.
func TestOptOutEndToEnd(t *testing.T) {
	s := startStack(t)
	const phone = "+966501112222"
	waitEvent := func(kind, phone string) receivedEvent {
		t.Helper()
		var got []receivedEvent
		s.waitFor(kind+" for "+phone, func() bool { got = s.events.find(kind, phone); return len(got) > 0 })
		return got[0]
	}

	t.Run("STOP suppresses, START lifts", func(t *testing.T) {
		before := s.webhook.Len()
		// Arabic "stop", spaced digits: one recipient.
		if r := s.inbound("demo-support-line", "+966 50 111 2222", "إيقاف"); r.status != 200 {
			t.Fatalf("inbound STOP = %d %s", r.status, r.body)
		}
		if s.webhook.Len() != before+1 {
			t.Error("the inbound webhook did not receive the message: sendguard must always let it through")
		}
		sent := s.rec.Len()
		r := s.send("key-demo", sendBody("demo-support-line", "00966501112222", okMessage, "support"))
		if r.status != 403 || !bytes.Equal(r.body, catalog.Body(catalog.RecipientSuppressed, catalog.Details{})) {
			t.Errorf("send after STOP = %d %s", r.status, r.body)
		}
		if s.rec.Len() != sent {
			t.Error("the sender received a send to a recipient who said STOP")
		}

		ev := waitEvent(events.OptedOut, phone)
		want := events.Recipient{Event: "recipient.opted_out", InstanceID: "demo-support-line", InstanceName: "Demo Support Line",
			From: phone, Reason: "recipient_requested_stop", MessageText: "إيقاف", Timestamp: "2026-05-08T10:00:00Z"}
		if !bytes.Equal(ev.body, want.Body()) || ev.id == "" {
			t.Errorf("event %s (id %q)\nwant %s", ev.body, ev.id, want.Body())
		}

		if r := s.inbound("demo-support-line", phone, "START"); r.status != 200 {
			t.Fatalf("inbound START = %d", r.status)
		}
		if r := s.send("key-demo", sendBody("demo-support-line", phone, okMessage, "support")); r.status != 200 {
			t.Errorf("send after START = %d %s", r.status, r.body)
		}
		waitEvent(events.OptedIn, phone)
	})

	t.Run("a question with cancel is not an opt-out", func(t *testing.T) {
		if r := s.inbound("demo-support-line", "+966501113333", "Can you cancel my order?"); r.status != 200 {
			t.Fatal(r.status)
		}
		if r := s.send("key-demo", sendBody("demo-support-line", "+966501113333", okMessage, "support")); r.status != 200 {
			t.Errorf("send after a question = %d %s", r.status, r.body)
		}
	})

	t.Run("a receiver outage delays the event", func(t *testing.T) {
		s.events.down()
		const p = "+966501114444"
		if r := s.inbound("demo-support-line", p, "STOP"); r.status != 200 {
			t.Fatal(r.status)
		}
		time.Sleep(1500 * time.Millisecond) // a few failed attempts
		if len(s.events.find(events.OptedOut, p)) != 0 {
			t.Fatal("delivered while the receiver was down")
		}
		s.events.up()
		waitEvent(events.OptedOut, p)
	})

	t.Run("SIGKILL after an acknowledged STOP loses nothing", func(t *testing.T) {
		s.events.down() // so the event is still pending at the kill
		const p = "+966501115555"
		if r := s.inbound("demo-support-line", p, "unsubscribe"); r.status != 200 {
			t.Fatal(r.status)
		}
		s.sendguard.Process.Signal(syscall.SIGKILL)
		s.sendguard.Wait()
		s.events.up()
		s.startSendguard(s.cfgPath)
		// Envoy's health flag can still say healthy from before the kill:
		// wait until the new process answers a (stateless) check itself.
		s.waitFor("the restarted sendguard deciding through Envoy", func() bool {
			r := s.send("", sendBody("demo-support-line", p, okMessage, "support"))
			return r.status == 401 && r.header.Get("X-Sendguard-Decision-Id") != ""
		})
		sent := s.rec.Len()
		if r := s.send("key-demo", sendBody("demo-support-line", p, okMessage, "support")); r.status != 403 {
			t.Errorf("send after restart = %d %s, want 403 recipient_suppressed", r.status, r.body)
		}
		if s.rec.Len() != sent {
			t.Error("the sender received a send to a suppressed recipient")
		}
		waitEvent(events.OptedOut, p)
	})
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	if s.events.bad != 0 {
		t.Errorf("%d deliveries had a bad signature", s.events.bad)
	}
}

func (s *stack) adminPost(url string) int {
	s.t.Helper()
	req, _ := http.NewRequest("POST", url, nil)
	req.Header.Set("Authorization", "Bearer e2e-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
