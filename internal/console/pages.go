package console

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// instanceRow is one instance in a list.
type instanceRow struct {
	Instance
	Paused   bool
	PausedOK bool // false: the store could not say
}

func sortedInstances(cfg *Config) []Instance {
	out := make([]Instance, 0, len(cfg.Instances))
	for _, in := range cfg.Instances {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

type resultRow struct {
	Result  string
	Total   float64
	PerSec  float64
	HasRate bool
}

type overviewData struct {
	Results    []resultRow
	RateSpan   time.Duration
	NoCounters bool
	Revisions  []Revision
	Pending    int
	PendingErr bool
	Events     map[string]float64
	Instances  []instanceRow
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session, cfg *Config) {
	now := c.opts.Now()
	d := overviewData{}
	if c.opts.Counters == nil {
		d.NoCounters = true
	} else {
		totals, evs := c.opts.Counters()
		d.Events = evs
		var rates map[string]float64
		var ok bool
		if c.opts.Rates != nil {
			rates, d.RateSpan, ok = c.opts.Rates.PerSecond(now, totals)
		}
		for res, n := range totals {
			d.Results = append(d.Results, resultRow{Result: res, Total: n, PerSec: rates[res], HasRate: ok})
		}
		sort.Slice(d.Results, func(i, j int) bool {
			if d.Results[i].Total != d.Results[j].Total {
				return d.Results[i].Total > d.Results[j].Total
			}
			return d.Results[i].Result < d.Results[j].Result
		})
	}
	if c.opts.Revisions != nil {
		d.Revisions = c.opts.Revisions()
	}
	var err error
	if d.Pending, err = cfg.State.Pending(r.Context()); err != nil {
		d.PendingErr = true
		c.opts.Log.ErrorContext(r.Context(), "console: events pending", "err", err)
	}
	for _, in := range sortedInstances(cfg) {
		p, err := cfg.State.Paused(r.Context(), in.ID)
		d.Instances = append(d.Instances, instanceRow{Instance: in, Paused: p, PausedOK: err == nil})
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Session: s, Data: d})
}

type suppressionRow struct {
	Instance   Instance
	Suppressed bool
	store.Suppression
}

type recipientData struct {
	Query  string
	Phone  string // E.164; "" before a lookup
	Rows   []suppressionRow
	Events []RecipientEvent
	Audit  []Entry
	NoLog  bool // events are not kept
}

// recipient looks a phone up: any spelling to E.164, and per instance
// whether it is suppressed, why and when.
func (c *Console) recipient(w http.ResponseWriter, r *http.Request, s *session, cfg *Config) {
	q := r.URL.Query().Get("phone")
	d := recipientData{Query: q, NoLog: c.opts.Events == nil}
	if q == "" {
		c.render(w, r, http.StatusOK, "recipient", page{Title: "Recipient", Session: s, Data: d})
		return
	}
	e164, ok := cfg.Phones.E164(q)
	if !ok {
		c.render(w, r, http.StatusUnprocessableEntity, "recipient", page{Title: "Recipient", Session: s, Data: d,
			Error: "That is not a valid phone number."})
		return
	}
	d.Phone = e164
	for _, in := range sortedInstances(cfg) {
		sup, err := cfg.State.Suppression(r.Context(), in.ID, e164)
		switch {
		case errors.Is(err, store.ErrNotFound):
			d.Rows = append(d.Rows, suppressionRow{Instance: in})
		case err != nil:
			c.fail(w, r, s, http.StatusServiceUnavailable, "The state store could not be read; see the logs.", err)
			return
		default:
			d.Rows = append(d.Rows, suppressionRow{Instance: in, Suppressed: true, Suppression: sup})
		}
	}
	if c.opts.Events != nil {
		d.Events = c.opts.Events.For(e164)
	}
	d.Audit = c.opts.Audit.Entries(func(e Entry) bool { return e.Phone == e164 })
	c.render(w, r, http.StatusOK, "recipient", page{Title: "Recipient", Session: s, Data: d, Notice: notices[r.URL.Query().Get("done")]})
}

// recipientForm reads instance, phone and reason of a block or lift.
func (c *Console) recipientForm(w http.ResponseWriter, r *http.Request, s *session, cfg *Config) (Instance, string, string, bool) {
	in, ok := cfg.Instances[r.PostForm.Get("instance")]
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "No such instance. Nothing was changed.", nil)
		return Instance{}, "", "", false
	}
	e164, ok := cfg.Phones.E164(r.PostForm.Get("phone"))
	if !ok {
		c.fail(w, r, s, http.StatusUnprocessableEntity, "That is not a valid phone number. Nothing was changed.", nil)
		return Instance{}, "", "", false
	}
	why, ok := reason(r)
	if !ok {
		c.fail(w, r, s, http.StatusUnprocessableEntity, "A reason is required (at most 200 characters, one line). Nothing was changed.", nil)
		return Instance{}, "", "", false
	}
	return in, e164, why, true
}

func backToRecipient(w http.ResponseWriter, r *http.Request, e164, done string) {
	http.Redirect(w, r, "/console/recipients?"+url.Values{"phone": {e164}, "done": {done}}.Encode(), http.StatusSeeOther)
}

// block adds a manual block (reason manual_block, source console: a
// recipient's START does not lift it). The operator's reason goes to the
// audit trail.
func (c *Console) block(w http.ResponseWriter, r *http.Request, s *session, cfg *Config) {
	in, e164, why, ok := c.recipientForm(w, r, s, cfg)
	if !ok {
		return
	}
	now := c.opts.Now().UTC()
	aerr, err := c.audited(r.Context(), Entry{Time: now, Who: s.who(), Action: "block", Instance: in.ID, Phone: e164, Reason: why}, func() error {
		return cfg.State.PutSuppression(r.Context(), store.Suppression{Instance: in.ID, Phone: e164, Reason: "manual_block", Source: "console", CreatedAt: now})
	})
	if c.changeFailed(w, r, s, aerr, err) {
		return
	}
	c.opts.Log.InfoContext(r.Context(), "console: suppression added", "instance_id", in.ID, "who", s.who())
	backToRecipient(w, r, e164, "blocked")
}

// lift removes the recipient's suppression for an instance, whatever its
// reason.
func (c *Console) lift(w http.ResponseWriter, r *http.Request, s *session, cfg *Config) {
	in, e164, why, ok := c.recipientForm(w, r, s, cfg)
	if !ok {
		return
	}
	if _, err := cfg.State.Suppression(r.Context(), in.ID, e164); errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, http.StatusNotFound, "The recipient is not suppressed for that instance. Nothing was changed.", nil)
		return
	} else if err != nil {
		c.fail(w, r, s, http.StatusServiceUnavailable, "The state store could not be read; see the logs. Nothing was changed.", err)
		return
	}
	aerr, err := c.audited(r.Context(), Entry{Time: c.opts.Now().UTC(), Who: s.who(), Action: "lift", Instance: in.ID, Phone: e164, Reason: why}, func() error {
		err := cfg.State.DeleteSuppression(r.Context(), in.ID, e164)
		if errors.Is(err, store.ErrNotFound) {
			return nil // lifted meanwhile: the outcome asked for
		}
		return err
	})
	if c.changeFailed(w, r, s, aerr, err) {
		return
	}
	c.opts.Log.InfoContext(r.Context(), "console: suppression lifted", "instance_id", in.ID, "who", s.who())
	backToRecipient(w, r, e164, "lifted")
}

func (c *Console) changeFailed(w http.ResponseWriter, r *http.Request, s *session, auditErr, err error) bool {
	switch {
	case auditErr != nil:
		c.fail(w, r, s, http.StatusServiceUnavailable, "The audit trail could not be written, so nothing was changed; see the logs.", auditErr)
	case err != nil:
		c.fail(w, r, s, http.StatusServiceUnavailable, "The state store failed, so the change may not have been made; see the logs.", err)
	default:
		return false
	}
	return true
}

type quota struct {
	Limit, Used, Remaining int64
	ResetsAt               time.Time
}

type instanceData struct {
	Instance
	Paused       bool
	Daily        quota
	Monthly      quota
	Tokens       float64
	LogOff       bool
	Decisions    []Decision
	TopRefusals  []CodeCount
	Audit        []Entry
	PauseAction  string
	PauseVerb    string
	UsageMissing bool
}

func (c *Console) instance(w http.ResponseWriter, r *http.Request, s *session, cfg *Config) {
	in, ok := cfg.Instances[r.PathValue("instance")]
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "No such instance.", nil)
		return
	}
	now := c.opts.Now()
	u, err := cfg.State.Usage(r.Context(), in.ID, in.Limits, now)
	if err != nil {
		c.fail(w, r, s, http.StatusServiceUnavailable, "The state store could not be read; see the logs.", err)
		return
	}
	paused, err := cfg.State.Paused(r.Context(), in.ID)
	if err != nil {
		c.fail(w, r, s, http.StatusServiceUnavailable, "The state store could not be read; see the logs.", err)
		return
	}
	d := instanceData{Instance: in, Paused: paused, Tokens: u.Tokens, LogOff: c.opts.Recent == nil,
		Daily: quotaOf(in.Limits.Daily, u.DailyUsed, cfg.Calendar, now, true), Monthly: quotaOf(in.Limits.Monthly, u.MonthlyUsed, cfg.Calendar, now, false)}
	if c.opts.Recent != nil {
		d.Decisions = c.opts.Recent.Last(in.ID)
		d.TopRefusals = c.opts.Recent.TopRefusals(in.ID, now)
	}
	d.Audit = c.opts.Audit.Entries(func(e Entry) bool { return e.Instance == in.ID && e.Phone == "" })
	if paused {
		d.PauseAction, d.PauseVerb = "resume", "Resume"
	} else {
		d.PauseAction, d.PauseVerb = "pause", "Pause"
	}
	c.render(w, r, http.StatusOK, "instance", page{Title: "Instance " + in.ID, Session: s, Data: d, Notice: notices[r.URL.Query().Get("done")]})
}

func quotaOf(limit, used int64, cal limiter.Calendar, now time.Time, day bool) quota {
	var end time.Time
	if day {
		_, end = cal.DayBounds(now)
	} else {
		_, end = cal.MonthBounds(now)
	}
	return quota{Limit: limit, Used: used, Remaining: max(0, limit-used), ResetsAt: end}
}

// pause pauses or resumes an instance, with a reason.
func (c *Console) pause(paused bool) handler {
	action := "resume"
	if paused {
		action = "pause"
	}
	return func(w http.ResponseWriter, r *http.Request, s *session, cfg *Config) {
		in, ok := cfg.Instances[r.PathValue("instance")]
		if !ok {
			c.fail(w, r, s, http.StatusNotFound, "No such instance. Nothing was changed.", nil)
			return
		}
		why, ok := reason(r)
		if !ok {
			c.fail(w, r, s, http.StatusUnprocessableEntity, "A reason is required (at most 200 characters, one line). Nothing was changed.", nil)
			return
		}
		aerr, err := c.audited(r.Context(), Entry{Time: c.opts.Now().UTC(), Who: s.who(), Action: action, Instance: in.ID, Reason: why}, func() error {
			return cfg.State.SetPaused(r.Context(), in.ID, paused)
		})
		if c.changeFailed(w, r, s, aerr, err) {
			return
		}
		c.opts.Log.InfoContext(r.Context(), "console: instance pause changed", "instance_id", in.ID, "paused", paused, "who", s.who())
		http.Redirect(w, r, "/console/instances/"+url.PathEscape(in.ID)+"?"+url.Values{"done": {action + "d"}}.Encode(), http.StatusSeeOther)
	}
}

// notices are the messages a redirect after a change may ask for (?done=):
// a fixed set, so that a link cannot put its own words on the page.
var notices = map[string]string{
	"blocked": "The manual block was added.",
	"lifted":  "The suppression was lifted.",
	"paused":  "The instance was paused.",
	"resumed": "The instance was resumed.",
}

type auditData struct {
	Entries []Entry
	Durable bool
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, s *session, _ *Config) {
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit trail", Session: s,
		Data: auditData{Entries: c.opts.Audit.Entries(nil), Durable: c.opts.Audit.Durable()}})
}
