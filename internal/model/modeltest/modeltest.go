// Package modeltest reads the detection corpus
// (internal/model/testdata/{inbound,outbound}/*.tsv) for the tests that
// hold the shipped models to their held-out floors.
package modeltest

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
)

// Dirs are the corpus directories: internal/model/testdata, or the
// colon-separated list in SENDGUARD_MODEL_CORPUS (to measure on a corpus
// outside the tree, such as a branch not merged yet).
func Dirs() []string {
	if v := os.Getenv("SENDGUARD_MODEL_CORPUS"); v != "" {
		return strings.Split(v, ":")
	}
	_, file, _, _ := runtime.Caller(0)
	return []string{filepath.Join(filepath.Dir(file), "..", "testdata")}
}

// Corpus returns every labelled example of task. With no corpus files it
// fails the test under CI and skips it elsewhere, saying why.
func Corpus(t testing.TB, task string) []model.Example {
	t.Helper()
	return load(t, task, Dirs())
}

// Fresh returns the examples of task in internal/model/testdata/fresh: text
// written without reading the corpus and never trained on (its README).
func Fresh(t testing.TB, task string) []model.Example {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return load(t, task, []string{filepath.Join(filepath.Dir(file), "..", "testdata", "fresh")})
}

func load(t testing.TB, task string, dirs []string) []model.Example {
	t.Helper()
	var files []string
	for _, d := range dirs {
		f, err := filepath.Glob(filepath.Join(d, task, "*.tsv"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	slices.Sort(files)
	if len(files) == 0 {
		msg := "no " + task + " corpus in " + strings.Join(dirs, ", ") + " (" + task + "/*.tsv)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var ex []model.Example
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		e, err := model.ParseTSV(f, name, task)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ex = append(ex, e...)
	}
	return ex
}
