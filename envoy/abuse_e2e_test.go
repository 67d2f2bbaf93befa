package envoy_test

import (
	"fmt"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/events"
)

// TestAbuseEndToEnd: one body fanned out to 60 recipients is throttled
// after the plan's 50 and the sender never sees the throttled sends; ten
// violations pause the instance, the next send answers 423, and the
// receivers hear instance.paused.
func TestAbuseEndToEnd(t *testing.T) {
	s := startStack(t)

	t.Run("fan-out is throttled", func(t *testing.T) {
		allowed, throttled := 0, 0
		for i := range 60 {
			before := s.rec.Len()
			// The same template with a different name and number each time.
			msg := fmt.Sprintf("Hi Name%c, your account %d is ready", 'A'+rune(i%26), 1000+i)
			r := s.send("key-demo", sendBody("inst_12345", fmt.Sprintf("+96650200%04d", i), msg, "transactional"))
			switch r.status {
			case 200:
				allowed++
			case 429:
				throttled++
				if r.header.Get("Retry-After") == "" || string(r.body) != string(catalog.Body(catalog.SendingThrottled, catalog.Details{})) {
					t.Errorf("throttled answer: %v %s", r.header, r.body)
				}
				if s.rec.Len() != before {
					t.Errorf("the sender received throttled send %d", i+1)
				}
			default:
				t.Fatalf("send %d = %d %s", i+1, r.status, r.body)
			}
		}
		if allowed != 50 || throttled != 10 {
			t.Errorf("60 recipients of one body: %d allowed, %d throttled; want 50 and 10", allowed, throttled)
		}
	})

	t.Run("repeated violations pause the instance", func(t *testing.T) {
		for i := range 10 {
			r := s.send("key-demo", sendBody("demo-support-line", recipient, "Big news about our products", "marketing"))
			if r.status != 422 {
				t.Fatalf("violation %d = %d %s", i+1, r.status, r.body)
			}
		}
		before := s.rec.Len()
		r := s.send("key-demo", sendBody("demo-support-line", recipient, okMessage, "support"))
		if r.status != 423 || string(r.body) != string(catalog.Body(catalog.InstancePaused, catalog.Details{})) {
			t.Errorf("send after ten violations = %d %s, want 423", r.status, r.body)
		}
		if s.rec.Len() != before {
			t.Error("the sender received a send from a paused instance")
		}
		s.waitFor("instance.paused event", func() bool {
			s.events.mu.Lock()
			defer s.events.mu.Unlock()
			for _, e := range s.events.got {
				if e.ev.Event == events.InstancePausedKind && e.ev.InstanceID == "demo-support-line" {
					return true
				}
			}
			return false
		})
		// The admin API resumes it.
		req := fmt.Sprintf("http://127.0.0.1:%d/v1/instances/demo-support-line/resume", s.admin)
		if code := s.adminPost(req); code/100 != 2 {
			t.Fatalf("resume = %d", code)
		}
		if r := s.send("key-demo", sendBody("demo-support-line", recipient, okMessage, "support")); r.status != 200 {
			t.Errorf("send after resume = %d %s", r.status, r.body)
		}
	})
}
