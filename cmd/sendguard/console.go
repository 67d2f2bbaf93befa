package main

import (
	"context"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/console"
	"github.com/sendguard/sendguard/internal/decisionlog"
	"github.com/sendguard/sendguard/internal/inbound"
)

// notifyingRecorder records inbound messages with the recorder and tells
// after (set by serve before the app serves; nil: no one) what each
// recorded: the console's list of a recipient's opt-outs and opt-ins.
type notifyingRecorder struct {
	r     *inbound.Recorder
	after func(inbound.Message, inbound.Outcome)
}

func (n *notifyingRecorder) Record(ctx context.Context, m inbound.Message) (inbound.Outcome, error) {
	out, err := n.r.Record(ctx, m)
	if err == nil && out.EventID != "" && n.after != nil {
		n.after(m, out)
	}
	return out, err
}

// consoleConfig is what the console serves from a (re)built app.
func consoleConfig(a *app) console.Config {
	// The console only reads the map: it shares the admin API's.
	return console.Config{AdminToken: a.admin.Token, ReadOnlyToken: a.consoleToken, Instances: a.admin.Instances,
		State: a.store, Phones: a.phones, Calendar: a.admin.Calendar}
}

// counterTotals reads, from what /metrics serves, the totals of
// sendguard_decisions_total by result and of the events counters
// (delivered, failed, dropped) summed over receivers.
func counterTotals(g prometheus.Gatherer) (decisions, events map[string]float64) {
	decisions, events = map[string]float64{}, map[string]float64{}
	fams, _ := g.Gather() // a partial gather still holds the families that worked
	for _, f := range fams {
		switch f.GetName() {
		case "sendguard_decisions_total":
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" {
						decisions[l.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		case "sendguard_events_delivered_total", "sendguard_events_failed_total", "sendguard_events_dropped_total":
			kind := f.GetName()[len("sendguard_events_") : len(f.GetName())-len("_total")]
			for _, m := range f.GetMetric() {
				events[kind] += m.GetCounter().GetValue()
			}
		}
	}
	return decisions, events
}

// consoleRevisions lists the revisions in force for the overview.
func consoleRevisions(revs *revisions) func() []console.Revision {
	return func() []console.Revision {
		r := revs.report()
		out := []console.Revision{
			{Part: "policies", Revision: r.Policies.Revision, Source: r.Policies.Source, LoadedAt: r.Policies.LoadedAt},
			{Part: "config", Revision: r.Config.Revision, Source: r.Config.Source, LoadedAt: r.Config.LoadedAt},
		}
		for _, t := range slices.Sorted(maps.Keys(r.Models)) {
			m := r.Models[t]
			out = append(out, console.Revision{Part: "model (" + t + ")", Revision: m.Revision, Source: m.Source, LoadedAt: m.LoadedAt})
		}
		return out
	}
}

// observeDecisions feeds the console's recent decisions from the decision
// log's writer. The recipient is kept unless the log omits phones
// (decision_log.phone: omit).
func observeDecisions(recent *console.Recent, keepPhone bool) func(*decisionlog.Record) {
	return func(rec *decisionlog.Record) {
		res := rec.Result
		if !res.Send || res.Instance == "" || res.Inbound {
			return
		}
		d := console.Decision{Time: rec.Time, ID: res.ID, Allowed: res.Allowed && rec.Err == nil, Code: string(res.Code),
			Status: res.Status, RiskScore: res.RiskScore, Purpose: res.Purpose}
		if rec.Err != nil && d.Code == "" {
			d.Code = "error"
		}
		if !d.Allowed && d.Status == 0 {
			d.Status = 500
		}
		if keepPhone {
			d.Phone = res.Phone
		}
		recent.Add(res.Instance, d)
	}
}
