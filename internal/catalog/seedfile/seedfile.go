// Package seedfile reads the source contract (the seed) as the tests use
// it: its error table and its example bodies. The tests compare the
// catalogue and every golden body with what it returns, so a drift from
// the contract fails a test rather than a review.
package seedfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Row is one row of the seed's error table.
type Row struct {
	Status  int
	Message string
}

// Path is the verbatim copy of the seed kept beside the catalogue.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "seed.txt")
}

// Read parses the seed at Path.
func Read() (table map[string]Row, examples map[string][]byte, err error) {
	raw, err := os.ReadFile(Path())
	if err != nil {
		return nil, nil, err
	}
	return Parse(raw)
}

// Parse returns the seed's error table (code → status and message) and its
// example bodies (code → compact JSON, keys in the seed's order).
func Parse(raw []byte) (table map[string]Row, examples map[string][]byte, err error) {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	table = map[string]Row{}
	examples = map[string][]byte{}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		// Table rows are three lines: "code |", "status |", "message |".
		if strings.HasSuffix(l, " |") && i+2 < len(lines) && !strings.HasPrefix(l, "|") {
			if status, err := strconv.Atoi(strings.TrimSuffix(lines[i+1], " |")); err == nil {
				table[strings.TrimSuffix(l, " |")] = Row{Status: status, Message: strings.TrimSuffix(lines[i+2], " |")}
				i += 2
				continue
			}
		}
		// Examples start with "code{" and end where the braces balance.
		if code, ok := strings.CutSuffix(l, "{"); ok && code != "" && !strings.ContainsAny(code, " \"") {
			var buf bytes.Buffer
			buf.WriteString("{")
			depth := 1
			for i++; i < len(lines) && depth > 0; i++ {
				buf.WriteString(lines[i])
				depth += strings.Count(lines[i], "{") - strings.Count(lines[i], "}")
			}
			i-- // the outer loop's i++ moves to the line after the example
			var c bytes.Buffer
			if err := json.Compact(&c, buf.Bytes()); err != nil {
				return nil, nil, fmt.Errorf("seed example %s: %w", code, err)
			}
			examples[code] = c.Bytes()
		}
	}
	return table, examples, nil
}
