package envoy_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
)

// TestInboundForgeryEndToEnd is the red team's attack through the real
// Envoy: anyone who reaches the sidecar POSTs a START (or a STOP) to the
// inbound webhook route. Unsigned, wrongly signed, or signed but cut by
// Envoy, it still reaches the customer's webhook, but sendguard records
// nothing: the recipient's suppression stands (a send to them still
// answers 403 recipient_suppressed and never reaches the sender), and a
// forged STOP suppresses no one. A correctly signed STOP (with the next
// secret of a rotation) suppresses and a signed START lifts. Every request
// is counted in sendguard_inbound_total by result.
func TestInboundForgeryEndToEnd(t *testing.T) {
	s := startStack(t)
	const suppressed = "+966500000000" // seeded: recipient_requested_stop on inst_12345
	suppressedBody := catalog.Body(catalog.RecipientSuppressed, catalog.Details{})

	sendTo := func(t *testing.T, phone string, want int) {
		t.Helper()
		sent := s.rec.Len()
		r := s.send("key-demo", sendBody("inst_12345", phone, okMessage, "transactional"))
		if r.status != want {
			t.Fatalf("send to %s = %d %s, want %d", phone, r.status, r.body, want)
		}
		if want == 403 {
			if !bytes.Equal(r.body, suppressedBody) {
				t.Errorf("send to %s = %s, want recipient_suppressed", phone, r.body)
			}
			if s.rec.Len() != sent {
				t.Errorf("the sender received a send to suppressed %s", phone)
			}
		}
	}
	// forged posts body with sig and checks that the webhook got it.
	forged := func(t *testing.T, body []byte, sig string) {
		t.Helper()
		before := s.webhook.Len()
		if r := s.inboundSigned(body, sig); r.status != 200 {
			t.Fatalf("inbound %.60s (sig %q) = %d %s, want forwarded to the webhook", body, sig, r.status, r.body)
		}
		if s.webhook.Len() != before+1 {
			t.Errorf("the webhook did not receive %.60s: sendguard must forward it untouched", body)
		}
		if got := s.webhook.Requests()[before].Header.Get("X-Hub-Signature-256"); got != sig {
			t.Errorf("the webhook saw X-Hub-Signature-256 %q, want %q as sent", got, sig)
		}
	}
	sendTo(t, suppressed, 403)

	start := inboundBody("inst_12345", suppressed, "START")
	t.Run("unsigned START", func(t *testing.T) {
		forged(t, start, "")
		sendTo(t, suppressed, 403)
	})
	t.Run("START signed with a guessed secret", func(t *testing.T) {
		forged(t, start, metaSign("guess", start))
		sendTo(t, suppressed, 403)
	})
	t.Run("START with another message's signature", func(t *testing.T) {
		forged(t, start, metaSign(inboundSecret, inboundBody("inst_12345", "+966501119999", "hello")))
		sendTo(t, suppressed, 403)
	})
	t.Run("signed START cut by Envoy", func(t *testing.T) {
		// Past Envoy's max_request_bytes (65536): sendguard sees a cut body,
		// which never verifies; the webhook gets it whole.
		big := []byte(fmt.Sprintf(`{"instance_id":"inst_12345","from":"%s","message_text":"START","pad":"%s"}`, suppressed, strings.Repeat("x", 70<<10)))
		forged(t, big, metaSign(inboundSecret, big))
		if got := s.webhook.Requests()[s.webhook.Len()-1].Body; !bytes.Equal(got, big) {
			t.Errorf("the webhook got %d bytes, want the whole %d", len(got), len(big))
		}
		sendTo(t, suppressed, 403)
	})
	t.Run("unsigned STOP suppresses no one", func(t *testing.T) {
		const p = "+966501117777"
		forged(t, inboundBody("inst_12345", p, "STOP"), "")
		sendTo(t, p, 200)
	})
	t.Run("signed STOP suppresses, signed START lifts", func(t *testing.T) {
		const p = "+966501118888"
		stop := inboundBody("inst_12345", p, "STOP")
		if r := s.inboundSigned(stop, metaSign(inboundSecretNext, stop)); r.status != 200 { // the rotation's next secret
			t.Fatalf("signed STOP = %d %s", r.status, r.body)
		}
		sendTo(t, p, 403)
		if r := s.inbound("inst_12345", p, "START"); r.status != 200 {
			t.Fatalf("signed START = %d %s", r.status, r.body)
		}
		sendTo(t, p, 200)
	})
	t.Run("metrics", func(t *testing.T) {
		m, err := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.admin))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`sendguard_inbound_total{result="unsigned"} 2`,
			`sendguard_inbound_total{result="bad_signature"} 2`,
			`sendguard_inbound_total{result="partial_body"} 1`,
			`sendguard_inbound_total{result="recorded"} 2`,
		} {
			if !strings.Contains(m, want+"\n") {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}
