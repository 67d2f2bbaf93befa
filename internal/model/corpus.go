package model

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sendguard/sendguard/internal/optout"
)

// Example is one labelled message.
type Example struct {
	Label string
	Lang  string
	Text  string
}

// ParseTSV reads a corpus file: one example a line, `label<TAB>lang<TAB>text`,
// `#` comments and blank lines skipped, `\n` in text a line break and `\\`
// a backslash. name prefixes errors (a file name). Every label must be one
// of task's classes.
func ParseTSV(r io.Reader, name, task string) ([]Example, error) {
	classes := Classes(task)
	if classes == nil {
		return nil, fmt.Errorf("unknown task %q (want %s or %s)", task, Inbound, Outbound)
	}
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		p := strings.SplitN(s, "\t", 3)
		if len(p) != 3 || strings.TrimSpace(p[2]) == "" {
			return nil, fmt.Errorf("%s:%d: want label<TAB>lang<TAB>text", name, line)
		}
		label, lang := strings.TrimSpace(p[0]), strings.TrimSpace(p[1])
		if !slices.Contains(classes, label) {
			return nil, fmt.Errorf("%s:%d: label %q is not one of %v", name, line, label, classes)
		}
		if lang == "" {
			return nil, fmt.Errorf("%s:%d: empty language", name, line)
		}
		out = append(out, Example{Label: label, Lang: lang, Text: unescape(p[2])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// HoldoutPct is the share of a corpus held out of training, in percent.
const HoldoutPct = 20

// HeldOut reports whether a message belongs to the held-out test part:
// decided by the SHA-256 of its normalised text, so the split is the same
// in train and eval on every machine, and two messages that differ only in
// case, spacing or punctuation fall on the same side.
func HeldOut(text string) bool {
	sum := sha256.Sum256([]byte(optout.Normalize(text)))
	return binary.BigEndian.Uint64(sum[:8])%100 < HoldoutPct
}

// Split names a part of a corpus.
type Split string

// Splits.
const (
	TrainSplit Split = "train" // what Train fits on
	TestSplit  Split = "test"  // held out: what figures are reported on
	AllSplits  Split = "all"
)

// Select returns the examples of split s.
func Select(ex []Example, s Split) []Example {
	if s == AllSplits {
		return ex
	}
	var out []Example
	for _, e := range ex {
		if HeldOut(e.Text) == (s == TestSplit) {
			out = append(out, e)
		}
	}
	return out
}

// canonical sorts examples into the order training sees before its
// shuffle and the data hash covers: by label, language, text. File names
// and line order do not change a model.
func canonical(ex []Example) []Example {
	out := slices.Clone(ex)
	slices.SortFunc(out, func(a, b Example) int {
		if c := strings.Compare(a.Label, b.Label); c != 0 {
			return c
		}
		if c := strings.Compare(a.Lang, b.Lang); c != 0 {
			return c
		}
		return strings.Compare(a.Text, b.Text)
	})
	return out
}

// DataHash is the hex SHA-256 of examples in canonical order, each as
// label, lang and text separated by tabs and ended by a newline (text
// escaped as in the corpus files).
func DataHash(ex []Example) string {
	h := sha256.New()
	for _, e := range canonical(ex) {
		fmt.Fprintf(h, "%s\t%s\t%s\n", e.Label, e.Lang, strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(e.Text))
	}
	return hex.EncodeToString(h.Sum(nil))
}
