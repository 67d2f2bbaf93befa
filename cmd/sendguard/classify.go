package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/optout"
)

// classify reads messages one per line and prints, per line,
// {"text":…,"intent":"opt_out"|"opt_in"|"none","matched":…}: for operators
// testing their keyword and phrase lists. With --config, the file's
// optout.extra lists are added to the built-in ones.
func classify(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("optout classify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file whose optout.extra lists to add")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lists := optout.DefaultLists()
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		lists = lists.Merge(cfg.OptOut.Extra)
	}
	d := optout.New(lists)
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for sc.Scan() {
		r := d.Classify(sc.Text())
		if err := enc.Encode(struct {
			Text    string `json:"text"`
			Intent  string `json:"intent"`
			Matched string `json:"matched"`
		}{sc.Text(), string(r.Intent), r.Matched}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read messages: %w", err)
	}
	return nil
}
