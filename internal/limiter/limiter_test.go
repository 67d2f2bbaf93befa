package limiter

import (
	"testing"
	"time"
)

var plan = Limits{Daily: 3, Monthly: 5, Rate: 1, Burst: 2}

func TestDecideOrderAndConsumption(t *testing.T) {
	cal := Calendar{}
	t0 := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	var s State
	step := func(at time.Time, want Verdict) Outcome {
		t.Helper()
		before := s
		next, out := cal.Decide(s, plan, at)
		if out.Verdict != want {
			t.Fatalf("Decide at %v = %v, want %v (state %+v)", at, out.Verdict, want, before)
		}
		if want != Allowed && (next.DayCount != cal.Current(before, plan, at).DayCount || next.MonthCount != cal.Current(before, plan, at).MonthCount) {
			t.Fatalf("a refused Decide consumed quota: %+v -> %+v", before, next)
		}
		s = next
		return out
	}
	step(t0, Allowed)
	step(t0, Allowed)
	out := step(t0, Throttled) // burst 2 spent
	if out.RetryAfter != time.Second {
		t.Errorf("throttled RetryAfter = %v, want 1s", out.RetryAfter)
	}
	step(t0.Add(time.Second), Allowed)
	out = step(t0.Add(time.Hour), DailyExceeded) // 3 used today
	if out.Limit != 3 || out.Used != 3 || out.Window != 24*time.Hour || out.RetryAfter != 13*time.Hour {
		t.Errorf("daily outcome = %+v", out)
	}
	day2 := t0.Add(24 * time.Hour)
	step(day2, Allowed)
	step(day2, Allowed)
	out = step(day2.Add(time.Hour), MonthlyExceeded) // 5 this month; monthly wins over a free day
	if out.Limit != 5 || out.Used != 5 || out.Window != 31*24*time.Hour {
		t.Errorf("monthly outcome = %+v", out)
	}
	if want := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Sub(day2.Add(time.Hour)); out.RetryAfter != want {
		t.Errorf("monthly RetryAfter = %v, want %v", out.RetryAfter, want)
	}
	step(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Allowed) // a new month
}

func TestMonthBeforeDailyWhenBothSpent(t *testing.T) {
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	cal := Calendar{}
	s := State{Day: cal.Day(now), DayCount: 3, Month: cal.Month(now), MonthCount: 5}
	if _, out := cal.Decide(s, plan, now); out.Verdict != MonthlyExceeded {
		t.Errorf("Decide with day and month spent = %v, want MonthlyExceeded", out.Verdict)
	}
}

func TestCalendarTimeZone(t *testing.T) {
	riyadh, err := time.LoadLocation("Asia/Riyadh") // UTC+3
	if err != nil {
		t.Fatal(err)
	}
	cal := Calendar{Loc: riyadh}
	at := time.Date(2026, 5, 31, 22, 30, 0, 0, time.UTC) // already June 1st in Riyadh
	if got := cal.Day(at); got != 20260601 {
		t.Errorf("Day = %d, want 20260601", got)
	}
	if got := cal.Month(at); got != 202606 {
		t.Errorf("Month = %d, want 202606", got)
	}
	_, end := cal.DayBounds(at)
	if want := time.Date(2026, 6, 1, 21, 0, 0, 0, time.UTC); !end.Equal(want) {
		t.Errorf("day end = %v, want %v", end, want)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, time.Hour: 3600} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestTightest(t *testing.T) {
	now := time.Date(2026, 5, 8, 23, 0, 0, 0, time.UTC) // 1h to the next day, 23 days + 1h to June
	toJune := int64(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Sub(now) / time.Second)
	l := Limits{Daily: 100, Monthly: 2000, Rate: 2, Burst: 100}
	tests := []struct {
		name string
		u    Usage
		want Remaining
	}{
		{"daily fewest", Usage{DailyUsed: 43, MonthlyUsed: 43, Tokens: 99},
			Remaining{Name: "daily", Quota: 100, Window: 86400, Remaining: 57, ResetInSeconds: 3600}},
		{"monthly fewest", Usage{DailyUsed: 1, MonthlyUsed: 1990, Tokens: 99},
			Remaining{Name: "monthly", Quota: 2000, Window: 31 * 86400, Remaining: 10, ResetInSeconds: toJune}},
		{"bucket fewest", Usage{DailyUsed: 5, MonthlyUsed: 5, Tokens: 2.5},
			Remaining{Name: "throttle", Quota: 100, Window: 50, Remaining: 2, ResetInSeconds: 49}},
		{"bucket empty", Usage{DailyUsed: 5, MonthlyUsed: 5, Tokens: 0.25},
			Remaining{Name: "throttle", Quota: 100, Window: 50, Remaining: 0, ResetInSeconds: 50}},
		{"tie daily and monthly: monthly", Usage{DailyUsed: 99, MonthlyUsed: 1999, Tokens: 99},
			Remaining{Name: "monthly", Quota: 2000, Window: 31 * 86400, Remaining: 1, ResetInSeconds: toJune}},
		{"tie daily and bucket: daily", Usage{DailyUsed: 91, MonthlyUsed: 91, Tokens: 9.5},
			Remaining{Name: "daily", Quota: 100, Window: 86400, Remaining: 9, ResetInSeconds: 3600}},
		{"overspent after a plan shrank: 0, never negative", Usage{DailyUsed: 150, MonthlyUsed: 150, Tokens: 99},
			Remaining{Name: "daily", Quota: 100, Window: 86400, Remaining: 0, ResetInSeconds: 3600}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Calendar{}).Tightest(tt.u, l, now); got != tt.want {
				t.Errorf("Tightest(%+v) = %+v, want %+v", tt.u, got, tt.want)
			}
		})
	}
	// Calendar periods in the quota time zone: Riyadh's day ends at 21:00 UTC.
	riyadh, err := time.LoadLocation("Asia/Riyadh")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 8, 20, 0, 0, 0, time.UTC)
	if got := (Calendar{Loc: riyadh}).Tightest(Usage{DailyUsed: 99, MonthlyUsed: 99, Tokens: 99}, l, at); got.Name != "daily" || got.ResetInSeconds != 3600 {
		t.Errorf("Tightest in Asia/Riyadh at %v = %+v, want daily reset in 3600s", at, got)
	}
}
