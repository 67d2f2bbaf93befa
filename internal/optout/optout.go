// Package optout tells an opt-out (STOP) or an opt-in (START) from any
// other inbound message, in many languages, without mistaking "Can you
// cancel my order?" for one.
//
// Rules, on Normalize'd text and lists:
//  1. Keywords: the whole message is an opt-out or opt-in keyword, with at
//     most politeness fillers around it ("stop please", "من فضلك توقف").
//  2. Phrases: an explicit intent phrase ("stop sending", "remove me from
//     your list", "لا ترسل لي") appears on word boundaries in a message of
//     at most MaxPhraseWords words, and is not preceded by a negation
//     ("don't stop sending").
//  3. Otherwise none: a keyword inside a sentence is another sense ("please
//     cancel my appointment", "non-stop", "the bus stop").
//
// Opt-out wins when both fire. The lists are data (lists.json, extended by
// the config), normalised and compiled once by New.
package optout

import (
	_ "embed"
	"encoding/json"
	"strings"
)

// Intent is what a message asks for.
type Intent string

// Intents.
const (
	OptOut Intent = "opt_out"
	OptIn  Intent = "opt_in"
	None   Intent = "none"
)

// MaxPhraseWords bounds the messages phrases are looked for in: an intent
// phrase in a long message is more likely part of something else.
const MaxPhraseWords = 12

// Lists are the keywords and phrases, as data.
type Lists struct {
	OptOut        []string `yaml:"opt_out" json:"opt_out"`
	OptIn         []string `yaml:"opt_in" json:"opt_in"`
	OptOutPhrases []string `yaml:"opt_out_phrases" json:"opt_out_phrases"`
	OptInPhrases  []string `yaml:"opt_in_phrases" json:"opt_in_phrases"`
	Fillers       []string `yaml:"fillers" json:"fillers"`     // politeness around a keyword
	Negations     []string `yaml:"negations" json:"negations"` // before a phrase, cancel it
}

//go:embed lists.json
var builtin []byte

// DefaultLists returns the built-in lists.
func DefaultLists() Lists {
	var l Lists
	if err := json.Unmarshal(builtin, &l); err != nil {
		panic("optout: lists.json: " + err.Error()) // a build-time fixture; the test proves it parses
	}
	return l
}

// Merge returns l with extra's entries added.
func (l Lists) Merge(extra Lists) Lists {
	cat := func(a, b []string) []string { return append(append([]string(nil), a...), b...) }
	return Lists{
		OptOut: cat(l.OptOut, extra.OptOut), OptIn: cat(l.OptIn, extra.OptIn),
		OptOutPhrases: cat(l.OptOutPhrases, extra.OptOutPhrases), OptInPhrases: cat(l.OptInPhrases, extra.OptInPhrases),
		Fillers: cat(l.Fillers, extra.Fillers), Negations: cat(l.Negations, extra.Negations),
	}
}

// Result is one classification. Matched is the normalised keyword or
// phrase that fired, "" for None.
type Result struct {
	Intent  Intent `json:"intent"`
	Matched string `json:"matched"`
}

// Detector classifies messages. It is immutable and safe for concurrent use.
type Detector struct {
	keywords  map[string]Intent
	phrases   []phrase
	fillers   map[string]bool
	negations [][]string
	maxFiller int
}

type phrase struct {
	words  []string
	intent Intent
	text   string
}

// New normalises and compiles the lists.
func New(l Lists) *Detector {
	d := &Detector{keywords: map[string]Intent{}, fillers: map[string]bool{}}
	for _, k := range l.OptIn {
		if n := Normalize(k); n != "" {
			d.keywords[n] = OptIn
		}
	}
	for _, k := range l.OptOut { // after opt-in: opt-out wins a clash
		if n := Normalize(k); n != "" {
			d.keywords[n] = OptOut
		}
	}
	add := func(list []string, in Intent) {
		for _, p := range list {
			if n := Normalize(p); n != "" {
				d.phrases = append(d.phrases, phrase{strings.Fields(n), in, n})
			}
		}
	}
	add(l.OptOutPhrases, OptOut) // first: opt-out wins
	add(l.OptInPhrases, OptIn)
	for _, f := range l.Fillers {
		if n := Normalize(f); n != "" {
			d.fillers[n] = true
			d.maxFiller = max(d.maxFiller, len(strings.Fields(n)))
		}
	}
	for _, n := range l.Negations {
		if w := strings.Fields(Normalize(n)); len(w) > 0 {
			d.negations = append(d.negations, w)
		}
	}
	return d
}

// Classify reads one inbound message.
func (d *Detector) Classify(text string) Result {
	n := Normalize(text)
	if n == "" {
		return Result{Intent: None}
	}
	if in, ok := d.keywords[n]; ok {
		return Result{Intent: in, Matched: n}
	}
	words := strings.Fields(n)
	// A keyword with only fillers around it.
	if r, ok := d.keywordAmongFillers(words); ok {
		return r
	}
	if len(words) > MaxPhraseWords {
		return Result{Intent: None}
	}
	for _, p := range d.phrases {
		for i := 0; i+len(p.words) <= len(words); i++ {
			if equal(words[i:i+len(p.words)], p.words) && !d.negated(words[:i]) {
				return Result{Intent: p.intent, Matched: p.text}
			}
		}
	}
	return Result{Intent: None}
}

// keywordAmongFillers finds a contiguous keyword with every other word a
// filler.
func (d *Detector) keywordAmongFillers(words []string) (Result, bool) {
	for i := range words {
		for j := len(words); j > i; j-- {
			kw := strings.Join(words[i:j], " ")
			in, ok := d.keywords[kw]
			if !ok {
				continue
			}
			if d.onlyFillers(words[:i]) && d.onlyFillers(words[j:]) {
				return Result{Intent: in, Matched: kw}, true
			}
		}
	}
	return Result{}, false
}

// onlyFillers reports whether words split into filler words and phrases.
func (d *Detector) onlyFillers(words []string) bool {
	for i := 0; i < len(words); {
		ok := false
		for n := min(d.maxFiller, len(words)-i); n > 0; n-- {
			if d.fillers[strings.Join(words[i:i+n], " ")] {
				i += n
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// negated reports whether before ends with a negation.
func (d *Detector) negated(before []string) bool {
	for _, neg := range d.negations {
		if len(neg) <= len(before) && equal(before[len(before)-len(neg):], neg) {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
