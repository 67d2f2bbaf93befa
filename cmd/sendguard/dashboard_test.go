package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/keys"
)

// dashboardFile is the Grafana dashboard the chart ships.
const dashboardFile = "../../charts/sendguard/dashboards/sendguard.json"

// TestDashboardMetricsExist: every metric named in every PromQL expression
// of the shipped dashboard (panel targets and template variables) is one a
// running `sendguard serve` exports on its /metrics, so a misspelt or
// renamed metric fails here instead of drawing an empty panel.
func TestDashboardMetricsExist(t *testing.T) {
	exprs := dashboardExprs(t, dashboardFile)
	used := map[string]bool{}
	for _, e := range exprs {
		names, err := promqlMetrics(e)
		if err != nil {
			t.Errorf("dashboard expression %q: %v", e, err)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	// The panels the dashboard must have draw from these.
	for _, want := range []string{"sendguard_decisions_total", "sendguard_decision_seconds_bucket", "sendguard_decision_failures_total",
		"sendguard_events_pending", "sendguard_events_failed_total", "sendguard_reloads_total", "sendguard_panics_total",
		"sendguard_shadow_denials_total", "sendguard_config_last_reload_successful"} {
		if !used[want] {
			t.Errorf("the dashboard never queries %s", want)
		}
	}
	// And some panels break them down: would-be denials in shadow mode by
	// code, reloads by result.
	for _, want := range []struct{ metric, by string }{
		{"sendguard_shadow_denials_total", "by (code)"},
		{"sendguard_reloads_total", "by (result)"},
	} {
		found := false
		for _, e := range exprs {
			found = found || strings.Contains(e, want.metric) && strings.Contains(e, want.by)
		}
		if !found {
			t.Errorf("no dashboard query sums %s %s", want.metric, want.by)
		}
	}

	exported := scrapeExported(t)
	var unknown []string
	for n := range used {
		if !exported[n] {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("the dashboard queries metrics sendguard does not export: %v\nexported: %v", unknown, sortedKeys(exported))
	}
}

// TestDashboardCheckCatchesMisspelling: the extraction the test above
// relies on finds the metric in each PromQL form the dashboard uses, and
// skips functions, aggregations, grouping labels, label matchers,
// durations, numbers and Grafana variables.
func TestDashboardCheckCatchesMisspelling(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (result) (rate(sendguard_decisions_total{job=~"$job"}[$__rate_interval]))`, []string{"sendguard_decisions_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(sendguard_decision_second_bucket{job=~"$job"}[5m])))`, []string{"sendguard_decision_second_bucket"}},
		{`sum(rate(a_total{x!~"allowed|passthrough"}[1m])) / sum without (instance) (rate(b_total[1m])) > bool 0`, []string{"a_total", "b_total"}},
		{`sum(rate(a_total[5m] offset 1h)) or on (job) group_left (x) vector(0)`, []string{"a_total"}},
		{`label_values(sendguard_decisions_total, job)`, []string{"sendguard_decisions_total"}},
		{`sendguard_events_pending`, []string{"sendguard_events_pending"}},
		{`{__name__="sendguard_panics_total", where="admin"}`, []string{"sendguard_panics_total"}},
		{`topk(3, sum by (where) (increase(sendguard_panic_total[1h])))`, []string{"sendguard_panic_total"}},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := promqlMetrics(tc.expr)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("promqlMetrics(%q) = %v, %v, want %v", tc.expr, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{`sum(rate(x[5m])`, `rate(x{job="a}[5m])`} {
		if _, err := promqlMetrics(bad); err == nil {
			t.Errorf("promqlMetrics(%q) = nil error, want one: an unreadable expression must not pass", bad)
		}
	}
}

// dashboardExprs returns every PromQL expression of the dashboard file:
// each "expr", and each template variable's query and definition.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Query      any    `json:"query"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, p := range dash.Panels {
		var v any
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatal(err)
		}
		walk(v)
	}
	if len(exprs) == 0 {
		t.Fatalf("%s has no panel expressions", path)
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		switch q := v.Query.(type) {
		case string:
			exprs = append(exprs, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	return exprs
}

// promqlKeywords are PromQL words that are not metric names where an
// identifier may stand.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
	"inf": true, "nan": true,
}

// promqlMetrics returns the metric names one PromQL expression selects, in
// order, once each. It reads the expression's tokens: strings, label
// matchers ({...}, where only __name__="x" names a metric), range and
// offset durations ([...]), numbers and $variables are skipped; an
// identifier followed by "(" is a function; the label lists after by,
// without, on, ignoring, group_left and group_right are skipped; Grafana's
// label_values(metric, label) selects only its metric. It fails on
// unbalanced brackets or an unterminated string.
func promqlMetrics(expr string) ([]string, error) {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	// readString returns the index after the string starting at i.
	readString := func(i int) (string, int, error) {
		q := expr[i]
		var sb strings.Builder
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`' && j+1 < len(expr):
				sb.WriteByte(expr[j+1])
				j++
			case expr[j] == q:
				return sb.String(), j + 1, nil
			default:
				sb.WriteByte(expr[j])
			}
		}
		return "", 0, fmt.Errorf("unterminated string at %d", i)
	}
	// matchers reads a {...} selector body from i (at '{'): label, operator,
	// string, comma-separated. It returns the metric a __name__="x"
	// matcher names and the index after '}'.
	matchers := func(i int) (string, int, error) {
		name := ""
		j := i + 1
		for {
			j = skipSpace(j)
			if j >= len(expr) {
				return "", 0, fmt.Errorf("unterminated label matchers at %d", i)
			}
			if expr[j] == '}' {
				return name, j + 1, nil
			}
			if expr[j] == ',' {
				j++
				continue
			}
			k := j
			for k < len(expr) && isIdent(expr[k]) {
				k++
			}
			if k == j {
				return "", 0, fmt.Errorf("want a label name at %d", j)
			}
			label := expr[j:k]
			k = skipSpace(k)
			o := k
			for k < len(expr) && strings.IndexByte("=!~", expr[k]) >= 0 {
				k++
			}
			op := expr[o:k]
			k = skipSpace(k)
			if k >= len(expr) || strings.IndexByte("\"'`", expr[k]) < 0 || op == "" {
				return "", 0, fmt.Errorf("want an operator and a string after %s at %d", label, k)
			}
			v, next, err := readString(k)
			if err != nil {
				return "", 0, err
			}
			if label == "__name__" && op == "=" {
				name = v
			}
			j = next
		}
	}
	depth := 0
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			_, next, err := readString(i)
			if err != nil {
				return nil, err
			}
			i = next
		case c == '{':
			n, next, err := matchers(i)
			if err != nil {
				return nil, err
			}
			if n != "" {
				add(n)
			}
			i = next
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated range at %d", i)
			}
			i += j + 1
		case c == '(':
			depth++
			i++
		case c == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("unbalanced ) at %d", i)
			}
			i++
		case c == '$':
			i++
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case word == "label_values" && next < len(expr) && expr[next] == '(':
				// Grafana: label_values(metric_or_selector, label): only
				// the part before the last comma selects.
				end := strings.LastIndexByte(expr, ')')
				if end < next {
					return nil, fmt.Errorf("unterminated label_values at %d", i)
				}
				inner := expr[next+1 : end]
				if k := strings.LastIndexByte(inner, ','); k >= 0 {
					inner = inner[:k]
				}
				sub, err := promqlMetrics(inner)
				if err != nil {
					return nil, err
				}
				for _, n := range sub {
					add(n)
				}
				i = end + 1
				continue
			case promqlKeywords[strings.ToLower(word)] && next < len(expr) && expr[next] == '(' &&
				slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, strings.ToLower(word)):
				// A label list, not an argument list.
				k := strings.IndexByte(expr[next:], ')')
				if k < 0 {
					return nil, fmt.Errorf("unterminated label list at %d", next)
				}
				i = next + k + 1
				continue
			case promqlKeywords[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(':
				// A function call.
			default:
				add(word)
			}
			i = j
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced ( in %q", expr)
	}
	return names, nil
}

// scrapeExported starts `sendguard serve` (memory store, one event
// receiver), decides one send so that the decision counters exist, and
// returns every series name its /metrics exports: each family's name, and
// for a histogram or summary its _bucket/_sum/_count (and _created) names.
func scrapeExported(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(processConfig, grpcAddr, adminAddr, "{type: memory}", keys.Hash("key")) +
		"events:\n  receivers:\n    - {name: crm, url: \"http://127.0.0.1:9/hook\", secret: s}\n"
	path := filepath.Join(dir, "sendguard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startChild(t, path, grpcAddr, adminAddr)
	resp, err := dial(t, grpcAddr).Check(context.Background(), sendCheck("shop"))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check(send to shop) = %v, %v; want allowed", resp, err)
	}
	r, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	exported := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		name, typ := f[2], f[3]
		exported[name] = true
		switch typ {
		case "histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[name+s] = true
			}
		case "summary":
			for _, s := range []string{"_sum", "_count"} {
				exported[name+s] = true
			}
		}
	}
	if !exported["sendguard_decisions_total"] {
		t.Fatalf("/metrics has no sendguard_decisions_total after a decision:\n%s", b)
	}
	return exported
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		if strings.HasPrefix(k, "sendguard_") {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}
