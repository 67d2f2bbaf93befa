package console

import (
	"sort"
	"sync"
	"time"
)

// Decision is one decided send as the console lists it.
type Decision struct {
	Time      time.Time
	ID        string
	Allowed   bool
	Code      string // "" when allowed
	Status    int
	RiskScore int
	Purpose   string
	Phone     string // E.164; masked when shown
}

// Recent keeps, per instance, the last decisions and the refusals of the
// last 24 hours by code, for the instance page. It is fed from the
// decision log's wrapper (so it is empty when the decision log is off).
// Safe for concurrent use: each instance has its own lock, so deciding
// goroutines of different instances do not queue on one.
type Recent struct {
	keep int
	mu   sync.RWMutex
	by   map[string]*instRecent
}

type instRecent struct {
	mu    sync.Mutex
	ring  []Decision // circular, at most keep
	next  int
	hours [24]hourCount
}

type hourCount struct {
	hour  int64 // Unix hour
	codes map[string]int
}

// NewRecent keeps the last keep decisions of each instance (default 100).
func NewRecent(keep int) *Recent {
	if keep <= 0 {
		keep = 100
	}
	return &Recent{keep: keep, by: map[string]*instRecent{}}
}

func (r *Recent) inst(id string, create bool) *instRecent {
	r.mu.RLock()
	ir := r.by[id]
	r.mu.RUnlock()
	if ir != nil || !create {
		return ir
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ir = r.by[id]; ir == nil {
		ir = &instRecent{}
		r.by[id] = ir
	}
	return ir
}

// Add records d for instance.
func (r *Recent) Add(instance string, d Decision) {
	if instance == "" {
		return
	}
	ir := r.inst(instance, true)
	ir.mu.Lock()
	defer ir.mu.Unlock()
	if len(ir.ring) < r.keep {
		ir.ring = append(ir.ring, d)
	} else {
		ir.ring[ir.next] = d
		ir.next = (ir.next + 1) % r.keep
	}
	if d.Allowed || d.Code == "" {
		return
	}
	h := d.Time.Unix() / 3600
	hc := &ir.hours[h%24]
	switch {
	case hc.codes == nil || h > hc.hour:
		hc.hour, hc.codes = h, map[string]int{} // the slot held a day ago (or nothing)
	case h < hc.hour:
		return // a day or more older than what the slot counts: out of any window it serves
	}
	hc.codes[d.Code]++
}

// Last returns instance's kept decisions, newest first.
func (r *Recent) Last(instance string) []Decision {
	ir := r.inst(instance, false)
	if ir == nil {
		return nil
	}
	ir.mu.Lock()
	defer ir.mu.Unlock()
	out := make([]Decision, 0, len(ir.ring))
	for i := len(ir.ring) - 1; i >= 0; i-- {
		out = append(out, ir.ring[(ir.next+i)%len(ir.ring)])
	}
	return out
}

// CodeCount is how often a code was answered.
type CodeCount struct {
	Code  string
	Count int
}

// TopRefusals returns the codes instance was refused with in the 24 hours
// up to now (by whole hours), most first, then by code.
func (r *Recent) TopRefusals(instance string, now time.Time) []CodeCount {
	ir := r.inst(instance, false)
	if ir == nil {
		return nil
	}
	cur := now.Unix() / 3600
	sum := map[string]int{}
	ir.mu.Lock()
	for _, hc := range ir.hours {
		if hc.codes != nil && hc.hour > cur-24 && hc.hour <= cur {
			for c, n := range hc.codes {
				sum[c] += n
			}
		}
	}
	ir.mu.Unlock()
	out := make([]CodeCount, 0, len(sum))
	for c, n := range sum {
		out = append(out, CodeCount{c, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Code < out[j].Code
	})
	return out
}

// RecipientEvent is one opt-out or opt-in recorded for a recipient.
type RecipientEvent struct {
	Time     time.Time
	Instance string
	Phone    string // E.164
	Intent   string // opt_out or opt_in
	Matched  string // the keyword or phrase
	Changed  bool   // the suppression was added or lifted
	EventID  string
}

// Events keeps the last opt-out and opt-in events recorded by this
// process (inbound webhook and POST /v1/inbound), for the recipient page.
// They are kept in memory: a restart forgets them (the suppression itself,
// with its reason, source and time, is in the store). Safe for concurrent
// use.
type Events struct {
	mu   sync.Mutex
	keep int
	list []RecipientEvent // oldest first
}

// NewEvents keeps the last keep events (default 10000).
func NewEvents(keep int) *Events {
	if keep <= 0 {
		keep = 10000
	}
	return &Events{keep: keep}
}

// Add records e.
func (ev *Events) Add(e RecipientEvent) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.list = append(ev.list, e)
	if len(ev.list) > ev.keep {
		ev.list = append(ev.list[:0:0], ev.list[len(ev.list)-ev.keep:]...)
	}
}

// For returns phone's events, newest first.
func (ev *Events) For(phone string) []RecipientEvent {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []RecipientEvent
	for i := len(ev.list) - 1; i >= 0; i-- {
		if ev.list[i].Phone == phone {
			out = append(out, ev.list[i])
		}
	}
	return out
}

// Rates turns the running totals of a counter (sendguard_decisions_total
// by result) into per-second rates: Sample records the totals at a time
// (called every few seconds by the server), and Since returns the rate of
// each result between the oldest sample in the window and now. Safe for
// concurrent use.
type Rates struct {
	mu      sync.Mutex
	samples []rateSample
	window  time.Duration
}

type rateSample struct {
	at     time.Time
	totals map[string]float64
}

// NewRates keeps samples for window (default one minute).
func NewRates(window time.Duration) *Rates {
	if window <= 0 {
		window = time.Minute
	}
	return &Rates{window: window}
}

// Sample records totals at now.
func (r *Rates) Sample(now time.Time, totals map[string]float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, rateSample{now, totals})
	i := 0
	for i < len(r.samples)-1 && now.Sub(r.samples[i].at) > r.window {
		i++
	}
	r.samples = r.samples[i:]
}

// PerSecond returns each result's rate from the oldest kept sample to
// totals at now, and the span it covers; ok is false until a sample at
// least a second older than now exists.
func (r *Rates) PerSecond(now time.Time, totals map[string]float64) (rates map[string]float64, span time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.samples {
		span = now.Sub(s.at)
		if span < time.Second || span > r.window+r.window/2 {
			continue
		}
		rates = map[string]float64{}
		for k, v := range totals {
			d := v - s.totals[k]
			if d < 0 { // the counter restarted
				d = v
			}
			rates[k] = d / span.Seconds()
		}
		return rates, span, true
	}
	return nil, 0, false
}
