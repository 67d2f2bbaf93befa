// Package limiter holds the arithmetic of sendguard's native limits: a
// per-instance token bucket for sending speed and calendar daily and monthly
// quotas. It keeps no state of its own: a store loads an instance's State,
// calls Decide, and writes the State back in the same atomic step, so every
// store (memory, embedded, Redis) applies the same rules.
//
// The checks run in the documented order, monthly before daily before
// speed, and a request consumes a quota unit and a token only when all three
// pass: a rejected request changes nothing.
package limiter

import (
	"math"
	"time"
)

// Limits are one plan's limits.
type Limits struct {
	Daily   int64
	Monthly int64
	Rate    float64 // tokens per second
	Burst   int64   // bucket capacity
}

// Verdict says which limit, if any, refused a request.
type Verdict uint8

// Verdicts, in the order they are checked.
const (
	Allowed Verdict = iota
	MonthlyExceeded
	DailyExceeded
	Throttled
)

func (v Verdict) String() string {
	switch v {
	case Allowed:
		return "allowed"
	case MonthlyExceeded:
		return "monthly_exceeded"
	case DailyExceeded:
		return "daily_exceeded"
	case Throttled:
		return "throttled"
	}
	return "unknown"
}

// State is what a store keeps per instance. The zero value is a fresh
// instance: no use and a full bucket.
type State struct {
	Day        int32   // calendar day of DayCount, as yyyymmdd; 0 = none yet
	DayCount   int64   // sends allowed on Day
	Month      int32   // calendar month of MonthCount, as yyyymm
	MonthCount int64   // sends allowed in Month
	Tokens     float64 // bucket content at Refilled
	Refilled   int64   // unix nanoseconds of the last refill; 0 = never (bucket full)
}

// Outcome is the result of one Decide.
type Outcome struct {
	Verdict Verdict
	// Limit and Used describe the quota that refused the request (monthly or
	// daily); for Allowed and Throttled they describe the daily quota.
	Limit, Used int64
	// RetryAfter is how long until the refusing limit lets a request through:
	// the next calendar day or month, or the next token.
	RetryAfter time.Duration
	// Window is the length of the refusing quota's calendar period (for
	// RateLimit-Policy); zero for Throttled.
	Window time.Duration
	Usage  Usage
}

// Usage is an instance's use of its plan after a decision.
type Usage struct {
	Day, Month             int32
	DailyUsed, MonthlyUsed int64
	Tokens                 float64
}

// Calendar places instants in the quota time zone.
type Calendar struct{ Loc *time.Location }

// Day returns the calendar day of t as yyyymmdd.
func (c Calendar) Day(t time.Time) int32 {
	y, m, d := t.In(c.loc()).Date()
	return int32(y*10000 + int(m)*100 + d)
}

// Month returns the calendar month of t as yyyymm.
func (c Calendar) Month(t time.Time) int32 {
	y, m, _ := t.In(c.loc()).Date()
	return int32(y*100 + int(m))
}

// DayBounds returns the start of t's day and of the next one.
func (c Calendar) DayBounds(t time.Time) (start, end time.Time) {
	y, m, d := t.In(c.loc()).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, c.loc()), time.Date(y, m, d+1, 0, 0, 0, 0, c.loc())
}

// MonthBounds returns the start of t's month and of the next one.
func (c Calendar) MonthBounds(t time.Time) (start, end time.Time) {
	y, m, _ := t.In(c.loc()).Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, c.loc()), time.Date(y, m+1, 1, 0, 0, 0, 0, c.loc())
}

func (c Calendar) loc() *time.Location {
	if c.Loc == nil {
		return time.UTC
	}
	return c.Loc
}

// Current returns s as seen at now: counters of a past day or month read as
// zero and the bucket is refilled. It does not consume anything.
func (c Calendar) Current(s State, l Limits, now time.Time) State {
	if day := c.Day(now); s.Day != day {
		s.Day, s.DayCount = day, 0
	}
	if month := c.Month(now); s.Month != month {
		s.Month, s.MonthCount = month, 0
	}
	burst := float64(l.Burst)
	if s.Refilled == 0 {
		s.Tokens = burst
	} else if elapsed := now.UnixNano() - s.Refilled; elapsed > 0 {
		s.Tokens = math.Min(burst, s.Tokens+float64(elapsed)/1e9*l.Rate)
	}
	s.Tokens = math.Min(s.Tokens, burst) // a plan may have shrunk
	s.Refilled = now.UnixNano()
	return s
}

// Decide checks monthly, daily and speed limits for one request at now and
// returns the state to store and the outcome. The returned state consumes one
// quota unit and one token only when the verdict is Allowed; otherwise it
// differs from s only by the refill and period roll-over, which are safe to
// store or to drop.
func (c Calendar) Decide(s State, l Limits, now time.Time) (State, Outcome) {
	s = c.Current(s, l, now)
	out := Outcome{Limit: l.Daily, Used: s.DayCount}
	switch {
	case s.MonthCount >= l.Monthly:
		start, end := c.MonthBounds(now)
		out = Outcome{Verdict: MonthlyExceeded, Limit: l.Monthly, Used: s.MonthCount, RetryAfter: end.Sub(now), Window: end.Sub(start)}
	case s.DayCount >= l.Daily:
		start, end := c.DayBounds(now)
		out = Outcome{Verdict: DailyExceeded, Limit: l.Daily, Used: s.DayCount, RetryAfter: end.Sub(now), Window: end.Sub(start)}
	case s.Tokens < 1:
		out.Verdict = Throttled
		out.RetryAfter = time.Duration((1 - s.Tokens) / l.Rate * 1e9)
	default:
		s.DayCount++
		s.MonthCount++
		s.Tokens--
		out.Used = s.DayCount
	}
	out.Usage = Usage{Day: s.Day, Month: s.Month, DailyUsed: s.DayCount, MonthlyUsed: s.MonthCount, Tokens: s.Tokens}
	return s, out
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1, for the
// Retry-After header.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}

// Policy names, as the RateLimit and RateLimit-Policy fields name them.
const (
	PolicyMonthly  = "monthly"
	PolicyDaily    = "daily"
	PolicyThrottle = "throttle"
)

// Remaining is one limit of a plan as a client may see it
// (draft-ietf-httpapi-ratelimit-headers): the policy's name, its quota q and
// window w in seconds, what remains of it r, and the seconds t until it is
// whole again.
type Remaining struct {
	Name                      string
	Quota, Window             int64
	Remaining, ResetInSeconds int64
}

// Tightest returns the limit of l with the fewest units left after u, the
// usage a decision at now left: the monthly and daily quotas (calendar
// periods; t is the seconds to the next period, w the current period's
// length) and the token bucket (q is the burst, r the whole tokens left, w
// the seconds an empty bucket takes to fill and t the seconds this one takes
// to fill). On a tie the earlier of monthly, daily, throttle wins: its wait
// is the longer. Nothing is ever negative.
func (c Calendar) Tightest(u Usage, l Limits, now time.Time) Remaining {
	ms, me := c.MonthBounds(now)
	best := Remaining{Name: PolicyMonthly, Quota: l.Monthly, Window: ceilSeconds(me.Sub(ms)),
		Remaining: max(0, l.Monthly-u.MonthlyUsed), ResetInSeconds: ceilSeconds(me.Sub(now))}
	if r := max(0, l.Daily-u.DailyUsed); r < best.Remaining {
		ds, de := c.DayBounds(now)
		best = Remaining{Name: PolicyDaily, Quota: l.Daily, Window: ceilSeconds(de.Sub(ds)), Remaining: r, ResetInSeconds: ceilSeconds(de.Sub(now))}
	}
	if l.Rate > 0 {
		tokens := math.Max(0, math.Min(u.Tokens, float64(l.Burst)))
		if r := int64(math.Floor(tokens)); r < best.Remaining {
			best = Remaining{Name: PolicyThrottle, Quota: l.Burst, Remaining: r,
				Window:         int64(math.Ceil(float64(l.Burst) / l.Rate)),
				ResetInSeconds: int64(math.Ceil((float64(l.Burst) - tokens) / l.Rate))}
		}
	}
	return best
}

// ceilSeconds rounds d up to whole seconds; a negative d is 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}
