package model

import (
	"fmt"
	"io"
	"slices"
	"sort"
)

// Report is a classifier's figures on a set of examples.
type Report struct {
	Classes   []string
	Total     int
	Correct   int
	Confusion [][]int             // [true][predicted]
	Langs     map[string]*LangRow // by the examples' lang column
}

// LangRow is one language's figures.
type LangRow struct {
	Total, Correct int
	// PerClass[c] counts examples of true class c and how many of them
	// were decided as c.
	PerClass [][2]int
}

// Accuracy is the share of examples decided as labelled.
func (r *Report) Accuracy() float64 { return ratio(r.Correct, r.Total) }

// Precision of class c: of the examples decided as c, the share labelled c.
func (r *Report) Precision(c int) float64 {
	n := 0
	for t := range r.Classes {
		n += r.Confusion[t][c]
	}
	return ratio(r.Confusion[c][c], n)
}

// Recall of class c: of the examples labelled c, the share decided as c.
func (r *Report) Recall(c int) float64 {
	n := 0
	for _, v := range r.Confusion[c] {
		n += v
	}
	return ratio(r.Confusion[c][c], n)
}

// Rate is the share of examples labelled any of from that were decided as
// any of to (for example: legitimate messages decided as anything else).
func (r *Report) Rate(from, to []int) float64 {
	num, den := 0, 0
	for _, t := range from {
		for p, v := range r.Confusion[t] {
			den += v
			if slices.Contains(to, p) {
				num += v
			}
		}
	}
	return ratio(num, den)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Evaluate decides every example with decide (the index of a class) and
// tallies the figures.
func Evaluate(classes []string, ex []Example, decide func(text string) int) *Report {
	r := &Report{Classes: classes, Confusion: make([][]int, len(classes)), Langs: map[string]*LangRow{}}
	for i := range r.Confusion {
		r.Confusion[i] = make([]int, len(classes))
	}
	for _, e := range ex {
		t := slices.Index(classes, e.Label)
		if t < 0 {
			continue
		}
		p := decide(e.Text)
		r.Total++
		r.Confusion[t][p]++
		l := r.Langs[e.Lang]
		if l == nil {
			l = &LangRow{PerClass: make([][2]int, len(classes))}
			r.Langs[e.Lang] = l
		}
		l.Total++
		l.PerClass[t][0]++
		if p == t {
			r.Correct++
			l.Correct++
			l.PerClass[t][1]++
		}
	}
	return r
}

// Argmax decides the most probable class.
func (m *Model) Argmax(text string) int {
	var buf [MaxClasses]float64
	p := m.Predict(text, buf[:0])
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return best
}

// Print writes the report as text: accuracy, per-class precision and
// recall, the confusion matrix, and a per-language table with each class's
// recall.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "examples %d  accuracy %.1f%%\n\n", r.Total, 100*r.Accuracy())
	fmt.Fprintf(w, "%-15s %9s %9s %7s\n", "class", "precision", "recall", "n")
	for c, name := range r.Classes {
		n := 0
		for _, v := range r.Confusion[c] {
			n += v
		}
		fmt.Fprintf(w, "%-15s %8.1f%% %8.1f%% %7d\n", name, 100*r.Precision(c), 100*r.Recall(c), n)
	}
	fmt.Fprintf(w, "\nconfusion (rows: labelled, columns: decided)\n%-15s", "")
	for _, name := range r.Classes {
		fmt.Fprintf(w, " %13.13s", name)
	}
	fmt.Fprintln(w)
	for c, name := range r.Classes {
		fmt.Fprintf(w, "%-15s", name)
		for _, v := range r.Confusion[c] {
			fmt.Fprintf(w, " %13d", v)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n%-8s %6s %9s", "lang", "n", "accuracy")
	for _, name := range r.Classes {
		fmt.Fprintf(w, " %13.13s", name)
	}
	fmt.Fprintln(w, "   (per class: decided right / labelled)")
	langs := make([]string, 0, len(r.Langs))
	for l := range r.Langs {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, lang := range langs {
		l := r.Langs[lang]
		fmt.Fprintf(w, "%-8s %6d %8.1f%%", lang, l.Total, 100*ratio(l.Correct, l.Total))
		for _, pc := range l.PerClass {
			fmt.Fprintf(w, " %13s", fmt.Sprintf("%d/%d", pc[1], pc[0]))
		}
		fmt.Fprintln(w)
	}
}
