package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/model"
)

// classify reads messages one per line and prints, per line,
// {"text":…,"intent":"opt_out"|"opt_in"|"none","matched":…,"by":"lists"|"model",
// "probabilities":{…},"top":[…]}: for operators testing their keyword and
// phrase lists and the model. With --config, the file's optout.extra lists,
// optout.model path and thresholds apply. probabilities are the model's for
// every class (also when the lists decided); top are the n-grams that pushed
// the model's most probable class most. When one clause of the message made
// it an opt-out, clause is that clause, and probabilities and top are its.
func classify(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("optout classify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file whose optout.extra lists and optout.model to use")
	top := fs.Int("top", 5, "how many n-grams to print per message")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := &config.Config{}
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	ms, err := loadModels(cfg, nil)
	if err != nil {
		return err
	}
	d := ms.detector(cfg)
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for sc.Scan() {
		text := sc.Text()
		r := d.Classify(text)
		out := struct {
			Text          string               `json:"text"`
			Intent        string               `json:"intent"`
			Matched       string               `json:"matched"`
			By            string               `json:"by"`
			Clause        string               `json:"clause,omitempty"`
			Probabilities map[string]float64   `json:"probabilities,omitempty"`
			Top           []model.Contribution `json:"top,omitempty"`
		}{Text: text, Intent: string(r.Intent), Matched: r.Matched, By: "lists", Clause: r.Clause}
		if r.Model != nil {
			out.By = "model"
		}
		if m := ms.inbound; m != nil {
			scored := text // a clause that decided is what the figures explain
			if r.Clause != "" {
				scored = r.Clause
			}
			p := m.Predict(scored, nil)
			out.Probabilities = map[string]float64{}
			best := 0
			for c, name := range m.Classes {
				out.Probabilities[name] = math.Round(p[c]*1000) / 1000
				if p[c] > p[best] {
					best = c
				}
			}
			out.Top = rounded(m.Explain(scored, best, *top))
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read messages: %w", err)
	}
	return nil
}

// rounded keeps printed weights short.
func rounded(cs []model.Contribution) []model.Contribution {
	for i := range cs {
		cs[i].Weight = math.Round(cs[i].Weight*1000) / 1000
	}
	return cs
}
