package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
)

// A policy tree holds, besides its .rego modules and data.json files:
const (
	// SchemaDir holds JSON Schemas, named as `opa check --schema DIR` names
	// them: schemas/input.json is schema.input, the input sendguard builds;
	// schemas/sendguard/config.json is schema.sendguard.config and describes
	// data.sendguard.config. Every data schema is enforced on the data at
	// its path at load; every data.json must lie under a schema's path. The
	// modules' `# METADATA schemas:` annotations bind them for the type
	// checker, so a reference to a key no schema has fails to compile.
	SchemaDir = "schemas"

	// ProbesFile holds the probe sends and the answers the policies must
	// give them (see Probe). It is required.
	ProbesFile = "sendguard/probes.json"

	// ValidationQuery, when the policies define it, is a set of messages:
	// the cross-field rules on the data that a JSON Schema cannot state
	// (throttle_threshold at most block_threshold, …). Policies whose set
	// is not empty are refused.
	ValidationQuery = "data.sendguard.validation.errors"
)

// Probe is one built-in probe send and the answer the loaded policies must
// give it. Probes are evaluated at every load (start-up, reload, config
// check) with the same content scanner as real sends; policies that answer
// any probe differently are refused.
type Probe struct {
	Name       string  `json:"name"`
	Purpose    *string `json:"purpose,omitempty"` // message_purpose as sent; absent: none
	Message    string  `json:"message"`
	Paused     bool    `json:"paused,omitempty"`     // the instance is paused for review
	Suppressed bool    `json:"suppressed,omitempty"` // the recipient is suppressed
	Want       string  `json:"want"`                 // "allowed", or the error code
}

// Allowed is a probe's Want for a send the policies allow.
const Allowed = "allowed"

// bundle is one load of a policy tree.
type bundle struct {
	modules   map[string]*ast.Module
	data      map[string]any
	dataFiles map[string]string // data path ("sendguard/config") → its file
	schemas   map[string]any    // schema path ("input", "sendguard/config") → JSON Schema
	probes    []Probe
}

// load reads every .rego module (tests excluded), every data.json, the
// schemas and the probes under fsys, as walk finds them. A data file's
// directory names its place in data, as with `opa test DIR`:
// sendguard/config/data.json is data.sendguard.config.
func load(fsys fs.FS) (*bundle, error) {
	b := &bundle{modules: map[string]*ast.Module{}, data: map[string]any{}, dataFiles: map[string]string{}, schemas: map[string]any{}}
	probes := false
	err := walk(fsys, func(p, file string) error {
		switch {
		case strings.HasPrefix(p, SchemaDir+"/"):
			if path.Ext(p) != ".json" {
				return nil
			}
			src, err := fs.ReadFile(fsys, file)
			if err != nil {
				return err
			}
			var s any
			if err := util.Unmarshal(src, &s); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			b.schemas[strings.TrimSuffix(strings.TrimPrefix(p, SchemaDir+"/"), ".json")] = s
		case p == ProbesFile:
			src, err := fs.ReadFile(fsys, file)
			if err != nil {
				return err
			}
			if b.probes, err = decodeProbes(src); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			probes = true
		case strings.HasSuffix(p, "_test.rego"):
			return nil
		case strings.HasSuffix(p, ".rego"):
			src, err := fs.ReadFile(fsys, file)
			if err != nil {
				return err
			}
			m, err := ast.ParseModuleWithOpts(p, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
			if err != nil {
				return err
			}
			b.modules[p] = m
		case path.Base(p) == "data.json":
			src, err := fs.ReadFile(fsys, file)
			if err != nil {
				return err
			}
			var v map[string]any
			if err := json.Unmarshal(src, &v); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if err := merge(b.data, path.Dir(p), v); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			b.dataFiles[path.Dir(p)] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(b.modules) == 0 {
		return nil, errors.New("no .rego modules")
	}
	if !probes {
		return nil, fmt.Errorf("%s is missing: a policy tree carries the probe sends it must answer as expected", ProbesFile)
	}
	return b, nil
}

// maxDepth bounds how deep walk descends: a symlink loop that os.SameFile
// cannot see (an fs.FS whose FileInfo is not the operating system's) ends
// here.
const maxDepth = 32

// walk calls fn, in lexical order, with the tree path and the file to read
// of every regular file under fsys, so that a directory laid out as a
// Kubernetes ConfigMap or Secret volume reads like the tree it holds:
//
//   - an entry whose name starts with ".." is skipped: the kubelet's
//     hidden timestamped directory and its ..data symlink, which would
//     otherwise load every file twice;
//   - a symlink is followed, to a file or to a directory (fsys decides
//     whether a target outside the root can be reached; Engine opens the
//     directory with os.Root, which refuses); a directory met again on
//     its own path is an error, not a loop;
//   - a top-level file whose name has dots before its extension names a
//     nested path, each such dot a slash: sendguard.decision.rego is
//     sendguard/decision.rego, schemas.sendguard.config.json is
//     schemas/sendguard/config.json. ConfigMap keys cannot hold a slash, so
//     this is how a ConfigMap carries a policy tree.
//
// Two files naming the same tree path are an error.
func walk(fsys fs.FS, fn func(p, file string) error) error {
	seen := map[string]string{}
	var dir func(d string, ancestors []fs.FileInfo) error
	dir = func(d string, ancestors []fs.FileInfo) error {
		if len(ancestors) > maxDepth {
			return fmt.Errorf("%s: more than %d directories deep (a symlink loop?)", d, maxDepth)
		}
		fi, err := fs.Stat(fsys, d)
		if err != nil {
			return err
		}
		for _, a := range ancestors {
			if os.SameFile(a, fi) {
				return fmt.Errorf("%s: symlink loop (the directory contains itself)", d)
			}
		}
		ancestors = append(ancestors, fi)
		entries, err := fs.ReadDir(fsys, d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "..") {
				continue
			}
			file := path.Join(d, e.Name())
			mode := e.Type()
			if mode&fs.ModeSymlink != 0 {
				fi, err := fs.Stat(fsys, file)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				mode = fi.Mode().Type()
			}
			switch {
			case mode.IsDir():
				if err := dir(file, ancestors); err != nil {
					return err
				}
				continue
			case !mode.IsRegular():
				continue
			}
			p := file
			if d == "." {
				p = unflatten(e.Name())
			}
			if other, dup := seen[p]; dup {
				return fmt.Errorf("%s and %s both name %s", other, file, p)
			}
			seen[p] = file
			if err := fn(p, file); err != nil {
				return err
			}
		}
		return nil
	}
	return dir(".", nil)
}

// unflatten turns a top-level file name into its tree path: every dot
// before the extension's is a slash. A name with an empty segment
// (".hidden", "a..b.rego") is left as it is.
func unflatten(name string) string {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return name
	}
	segs := strings.Split(name[:i], ".")
	if slices.Contains(segs, "") {
		return name
	}
	return strings.Join(segs, "/") + name[i:]
}

// decodeProbes reads the probe file strictly: unknown keys are errors, and
// a usable set has at least one probe, each with a unique name and a want.
func decodeProbes(src []byte) ([]Probe, error) {
	var f struct {
		Probes []Probe `json:"probes"`
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the probes object")
	}
	var errs []error
	names := map[string]bool{}
	for i, p := range f.Probes {
		if p.Name == "" || names[p.Name] {
			errs = append(errs, fmt.Errorf("/probes/%d/name: %q must be non-empty and unique", i, p.Name))
		}
		names[p.Name] = true
		if p.Want == "" {
			errs = append(errs, fmt.Errorf("/probes/%d/want: required (%q or an error code)", i, Allowed))
		}
	}
	if len(f.Probes) == 0 {
		errs = append(errs, errors.New("/probes: at least one probe is required"))
	}
	return f.Probes, errors.Join(errs...)
}

// schemaSet is the bundle's schemas for the type checker.
func (b *bundle) schemaSet() *ast.SchemaSet {
	if len(b.schemas) == 0 {
		return nil
	}
	ss := ast.NewSchemaSet()
	for p, s := range b.schemas {
		ref := ast.Ref{ast.SchemaRootDocument}
		for _, seg := range strings.Split(p, "/") {
			ref = append(ref, ast.StringTerm(seg))
		}
		ss.Put(ref, s)
	}
	return ss
}

// validateData checks every data schema against the data at its path, and
// that no data file lies outside every schema's path. Each error names the
// file and the JSON pointer of the field.
func (b *bundle) validateData(ctx context.Context) error {
	var paths []string
	for p := range b.schemas {
		if p != "input" {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var errs []error
	b.unschematized("", b.data, paths, &errs)
	for _, p := range paths {
		where := b.dataFiles[p]
		if where == "" {
			where = "data." + strings.ReplaceAll(p, "/", ".")
		}
		doc, ok := lookup(b.data, p)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: missing: %s/%s.json describes it, and no data file provides it", where, SchemaDir, p))
			continue
		}
		msgs, err := matchSchema(ctx, doc, b.schemas[p])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s.json: %w", SchemaDir, p, err))
			continue
		}
		for _, m := range msgs {
			errs = append(errs, fmt.Errorf("%s: %s", where, m))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// unschematized reports every document under node (at the slash-separated
// prefix) that no schema path covers: neither at or under a schema path, nor
// an object on the way to one.
func (b *bundle) unschematized(prefix string, node map[string]any, paths []string, errs *[]error) {
	for k, v := range node {
		p := strings.TrimPrefix(prefix+"/"+k, "/")
		covered, above := false, false
		for _, sp := range paths {
			covered = covered || p == sp || strings.HasPrefix(p, sp+"/")
			above = above || strings.HasPrefix(sp, p+"/")
		}
		if covered {
			continue
		}
		if m, ok := v.(map[string]any); ok && above {
			b.unschematized(p, m, paths, errs)
			continue
		}
		*errs = append(*errs, fmt.Errorf("%s: data.%s has no schema in %s/ (a misplaced or misnamed data file or key?)", b.fileOf(p), strings.ReplaceAll(p, "/", "."), SchemaDir))
	}
}

// fileOf names the data file that defines the document at path p.
func (b *bundle) fileOf(p string) string {
	for dir := p; ; dir = path.Dir(dir) {
		if f, ok := b.dataFiles[dir]; ok {
			return f
		}
		if dir == "." || dir == "/" {
			return "data." + strings.ReplaceAll(p, "/", ".")
		}
	}
}

// lookup returns the value at the slash-separated path p in data.
func lookup(data map[string]any, p string) (any, bool) {
	var v any = data
	for _, seg := range strings.Split(p, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

// matchSchema validates doc against schema with OPA's own JSON Schema
// validator (json.match_schema) and returns one message per violation,
// "/json/pointer: what is wrong".
func matchSchema(ctx context.Context, doc, schema any) ([]string, error) {
	rs, err := rego.New(
		rego.Query("r := json.match_schema(input.doc, input.schema)"),
		rego.Input(map[string]any{"doc": doc, "schema": schema}),
		rego.StrictBuiltinErrors(true),
	).Eval(ctx)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, errors.New("json.match_schema is undefined")
	}
	r, _ := rs[0].Bindings["r"].([]any)
	if len(r) != 2 {
		return nil, fmt.Errorf("json.match_schema: unexpected result %v", rs[0].Bindings["r"])
	}
	if ok, _ := r[0].(bool); ok {
		return nil, nil
	}
	list, _ := r[1].([]any)
	msgs := make([]string, 0, len(list))
	for _, x := range list {
		e, _ := x.(map[string]any)
		msgs = append(msgs, schemaMessage(e))
	}
	slices.Sort(msgs)
	return msgs, nil
}

// schemaMessage turns one json.match_schema error into "/pointer: message".
// The validator names fields with dots from "(Root)" and reports unknown
// and missing keys on their parent object; the message names the key.
func schemaMessage(e map[string]any) string {
	field, _ := e["field"].(string)
	typ, _ := e["type"].(string)
	desc, _ := e["desc"].(string)
	ptr := ""
	if field != "" && field != "(Root)" {
		ptr = "/" + strings.ReplaceAll(field, ".", "/")
	}
	switch typ {
	case "additional_property_not_allowed":
		if k, ok := strings.CutPrefix(desc, "Additional property "); ok {
			return ptr + "/" + strings.TrimSuffix(k, " is not allowed") + ": unknown key (not in the schema; a typo?)"
		}
	case "required":
		if k, ok := strings.CutSuffix(desc, " is required"); ok {
			return ptr + "/" + k + ": required key is missing"
		}
	case "invalid_type":
		if rest, ok := strings.CutPrefix(desc, "Invalid type. Expected: "); ok {
			if want, got, ok := strings.Cut(rest, ", given: "); ok {
				return ptr + ": expected " + want + ", got " + got
			}
		}
	}
	if ptr == "" {
		ptr = "/"
	}
	if desc != "" {
		desc = strings.ToLower(desc[:1]) + desc[1:]
	}
	return ptr + ": " + desc
}

// validate evaluates ValidationQuery, when the policies define it.
func validate(ctx context.Context, opts []func(*rego.Rego)) error {
	rs, err := rego.New(append(opts[:len(opts):len(opts)], rego.Query(ValidationQuery))...).Eval(ctx)
	if err != nil {
		return err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil // not defined: no cross-field rules
	}
	set, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return fmt.Errorf("%s is %T, want a set of strings", ValidationQuery, rs[0].Expressions[0].Value)
	}
	var errs []error
	for _, m := range set {
		errs = append(errs, fmt.Errorf("%v", m))
	}
	return errors.Join(errs...)
}

// probeInput is the policy input of probe p.
func probeInput(p Probe, scan func(string) Signals) Input {
	in := Input{InstanceID: "probe", Plan: "probe", Paused: p.Paused, Phone: "+15555550100", Suppressed: p.Suppressed, Signals: scan(p.Message)}
	if p.Purpose != nil {
		in.Purpose, in.PurposePresent = *p.Purpose, true
	}
	return in
}

// runProbes evaluates every probe against p and lists each whose answer
// differs from its Want.
func (p *prepared) runProbes(ctx context.Context, probes []Probe, scan func(string) Signals) error {
	var errs []error
	for _, pr := range probes {
		d, err := p.eval(ctx, probeInput(pr, scan))
		if err != nil {
			errs = append(errs, fmt.Errorf("probe %q: %w", pr.Name, err))
			continue
		}
		got := Allowed
		if !d.Allow {
			got = d.Error
		}
		if got != pr.Want {
			errs = append(errs, fmt.Errorf("probe %q: answered %s (risk score %d), want %s", pr.Name, got, d.RiskScore, pr.Want))
		}
	}
	return errors.Join(errs...)
}
