package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/store"
)

// maxReasonBytes bounds an imported row's reason.
const maxReasonBytes = 256

// badRowsShown is how many bad rows an import names before it only counts.
const badRowsShown = 100

// suppressionsCmd runs `sendguard suppressions import`.
func suppressionsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprint(stderr, usage)
		return errors.New("unknown suppressions command")
	}
	fs := flag.NewFlagSet("suppressions import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := getenv("SENDGUARD_CONFIG")
	if cfgPath == "" {
		cfgPath = "sendguard.yaml"
	}
	fs.StringVar(&cfgPath, "config", cfgPath, "config file whose store is written (env SENDGUARD_CONFIG)")
	instance := fs.String("instance", "", "the instance the recipients are suppressed for (required; one of the config's instances)")
	reason := fs.String("reason", "manual_block", "reason of the rows without one")
	skipBad := fs.Bool("skip-bad", false, "import the good rows even when some are bad (the bad ones are still reported)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("suppressions import takes one CSV file (- for stdin)")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	known := slices.ContainsFunc(cfg.Instances, func(in config.Instance) bool { return in.ID == *instance })
	if !known {
		return fmt.Errorf("--instance %q is not an instance of %s", *instance, cfgPath)
	}
	if *reason == "" || !utf8.ValidString(*reason) || len(*reason) > maxReasonBytes {
		return fmt.Errorf("--reason must be 1 to %d bytes of UTF-8", maxReasonBytes)
	}
	name := fs.Arg(0)
	var in io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else {
		name = "stdin"
	}
	// No cache: every number of an import is seen once.
	phones, err := phone.New(phone.Options{DefaultRegion: cfg.Request.DefaultRegion, CacheSize: -1})
	if err != nil {
		return err
	}
	defer phones.Close()

	started := time.Now()
	rows, bad, err := readSuppressionCSV(in, phones, *reason)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for i, b := range bad {
		if i == badRowsShown {
			fmt.Fprintf(stderr, "%s: … and %d more bad rows\n", name, len(bad)-badRowsShown)
			break
		}
		fmt.Fprintf(stderr, "%s:%d: %s\n", name, b.line, b.why)
	}
	if len(bad) > 0 && !*skipBad {
		return fmt.Errorf("%s: %d bad rows, nothing imported (--skip-bad imports the good ones)", name, len(bad))
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStore(ctx, cfg, limiter.Calendar{Loc: cfg.Location()}, getenv, false, log)
	if err != nil {
		if cfg.Store.Type == "embedded" {
			return fmt.Errorf("%w (the embedded store is locked while sendguard serves from it: stop it first, or add suppressions through the admin API)", err)
		}
		return err
	}
	defer st.Close()
	added, err := importRows(ctx, st, *instance, rows, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("import into %s after %d new suppressions (importing again completes it): %w", cfg.Store.Type, added, err)
	}
	_, err = fmt.Fprintf(stdout, "%s: %d rows, %d new suppressions for %s, %d already suppressed, %d bad rows skipped (%.1fs)\n",
		name, len(rows), added, *instance, len(rows)-added, len(bad), time.Since(started).Seconds())
	return err
}

// importRow is one good row: the phone in E.164 and its reason.
type importRow struct {
	phone, reason string
	line          int
}

// badRow is a row that was not imported, by its line number.
type badRow struct {
	line int
	why  string
}

// readSuppressionCSV reads rows of phone[,reason]. A first row whose first
// field is "phone" (any case) is a header. Phones are normalised as sends'
// are, on every core; an empty line is skipped. A row that cannot be used
// is returned in bad with its line; a file that cannot be read is an
// error.
func readSuppressionCSV(in io.Reader, phones *phone.Normalizer, defaultReason string) ([]importRow, []badRow, error) {
	br := bufio.NewReaderSize(in, 1<<16)
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		br.Discard(3) // a byte order mark, as spreadsheets write
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	r.LazyQuotes = true
	var rows []importRow // phone raw until normalised
	var bad []badRow
	first := true
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad = append(bad, badRow{pe.Line, pe.Err.Error()})
				continue
			}
			return nil, bad, err
		}
		line, _ := r.FieldPos(0)
		isFirst := first
		first = false
		raw := strings.TrimSpace(rec[0])
		if isFirst && strings.EqualFold(raw, "phone") {
			continue
		}
		switch {
		case len(rec) > 2:
			bad = append(bad, badRow{line, fmt.Sprintf("%d columns, want phone[,reason]", len(rec))})
			continue
		case raw == "" && len(rec) == 1:
			continue // an empty line
		}
		reason := defaultReason
		if len(rec) == 2 {
			if reason = strings.TrimSpace(rec[1]); reason == "" {
				reason = defaultReason
			}
		}
		if !utf8.ValidString(reason) || len(reason) > maxReasonBytes {
			bad = append(bad, badRow{line, fmt.Sprintf("the reason must be at most %d bytes of UTF-8", maxReasonBytes)})
			continue
		}
		if reason != defaultReason {
			reason = strings.Clone(reason) // rec's strings are not reused, but keep only what is needed
		}
		rows = append(rows, importRow{strings.Clone(raw), reason, line})
	}
	// Normalise on every core: phonenumbers' validation is the cost.
	valid := make([]bool, len(rows))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	per := (len(rows) + workers - 1) / max(workers, 1)
	for w := range workers {
		lo, hi := min(w*per, len(rows)), min((w+1)*per, len(rows))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if e164, ok := phones.E164(rows[i].phone); ok {
					rows[i].phone, valid[i] = e164, true
				}
			}
		})
	}
	wg.Wait()
	good := rows[:0]
	for i, row := range rows {
		if !valid[i] {
			bad = append(bad, badRow{row.line, fmt.Sprintf("%q is not a valid phone number", row.phone)})
			continue
		}
		good = append(good, row)
	}
	slices.SortFunc(bad, func(a, b badRow) int { return a.line - b.line })
	return good, bad, nil
}

// importRows writes rows as suppressions of instance, in phone order (the
// embedded store's key order), store.AddChunk per AddSuppressions call;
// existing suppressions are kept as they are. It returns how many were
// new.
func importRows(ctx context.Context, st stateStore, instance string, rows []importRow, now time.Time) (int, error) {
	slices.SortFunc(rows, func(a, b importRow) int {
		if c := strings.Compare(a.phone, b.phone); c != 0 {
			return c
		}
		return a.line - b.line // of a repeated phone, the first row wins
	})
	added := 0
	batch := make([]store.Suppression, 0, min(len(rows), store.AddChunk))
	for start := 0; start < len(rows); start += store.AddChunk {
		batch = batch[:0]
		for _, r := range rows[start:min(start+store.AddChunk, len(rows))] {
			batch = append(batch, store.Suppression{Instance: instance, Phone: r.phone, Reason: r.reason, Source: "import", CreatedAt: now})
		}
		n, err := st.AddSuppressions(ctx, batch)
		added += n
		if err != nil {
			return added, err
		}
	}
	return added, nil
}
