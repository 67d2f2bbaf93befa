package abuse

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)

func TestBodyKeyMasksNamesAndDigits(t *testing.T) {
	a := BodyKey("Hi Sara, your order 1234 has shipped")
	if a != BodyKey("Hi Omar, your order 98765 has shipped") || a != BodyKey("Hi Li,  your order 7 has shipped!") {
		t.Error("the same template gave different keys")
	}
	if a == BodyKey("Hi Sara, your order 1234 was cancelled") {
		t.Error("different bodies share a key")
	}
}

func TestFanOut(t *testing.T) {
	tr := New()
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 100}
	body := BodyKey("Big news for you")
	for i := range 50 {
		phone := fmt.Sprintf("+96650000%04d", i)
		if v, _ := tr.Check("i", body, phone, l, t0); v != OK {
			t.Fatalf("recipient %d = %v", i+1, v)
		}
		tr.Record("i", body, phone, t0)
	}
	v, retry := tr.Check("i", body, "+966509999999", l, t0.Add(time.Minute))
	if v != Throttle || retry != 9*time.Minute {
		t.Errorf("51st recipient = %v retry %v, want throttle for 9m", v, retry)
	}
	// A recipient already sent this body is not a new one.
	if v, _ := tr.Check("i", body, "+966500000007", l, t0.Add(time.Minute)); v != OK {
		t.Errorf("repeat recipient = %v", v)
	}
	// Another instance, another body: independent.
	if v, _ := tr.Check("other", body, "+966509999999", l, t0); v != OK {
		t.Error("instances share counters")
	}
	if v, _ := tr.Check("i", BodyKey("Something else"), "+966509999999", l, t0); v != OK {
		t.Error("bodies share counters")
	}
	for i := 50; i < 100; i++ {
		tr.Record("i", body, fmt.Sprintf("+96650000%04d", i), t0)
	}
	if v, _ := tr.Check("i", body, "+966509999999", l, t0); v != Block {
		t.Errorf("101st recipient = %v, want block", v)
	}
	// The window passes.
	if v, _ := tr.Check("i", body, "+966509999999", l, t0.Add(10*time.Minute)); v != OK {
		t.Errorf("after the window = %v", v)
	}
}

func TestPairLimit(t *testing.T) {
	tr := New()
	l := Limits{PairPerMinute: 3}
	for i := range 3 {
		now := t0.Add(time.Duration(i) * time.Second)
		if v, _ := tr.Check("i", BodyKey(fmt.Sprint("m", i)), "+1", l, now); v != OK {
			t.Fatal(v)
		}
		tr.Record("i", BodyKey(fmt.Sprint("m", i)), "+1", now)
	}
	v, retry := tr.Check("i", BodyKey("m9"), "+1", l, t0.Add(10*time.Second))
	if v != Throttle || retry != 50*time.Second {
		t.Errorf("4th in a minute = %v retry %v", v, retry)
	}
	if v, _ := tr.Check("i", BodyKey("m9"), "+2", l, t0.Add(10*time.Second)); v != OK {
		t.Error("another recipient throttled")
	}
	if v, _ := tr.Check("i", BodyKey("m9"), "+1", l, t0.Add(61*time.Second)); v != OK {
		t.Error("still throttled after a minute")
	}
}

func TestViolations(t *testing.T) {
	tr := New()
	for i := 1; i <= 3; i++ {
		if n := tr.Violation("i", 10*time.Minute, t0.Add(time.Duration(i)*time.Minute)); n != i {
			t.Fatalf("violation %d counted %d", i, n)
		}
	}
	if n := tr.Violation("i", 10*time.Minute, t0.Add(12*time.Minute)); n != 2 {
		t.Errorf("window: %d, want 2 (the first two fell out)", n)
	}
	tr.ResetViolations("i")
	if n := tr.Violation("i", 10*time.Minute, t0.Add(13*time.Minute)); n != 1 {
		t.Errorf("after reset: %d", n)
	}
}
