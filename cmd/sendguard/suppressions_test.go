package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// importConfig writes the devstack config with storeCfg as its store.
func importConfig(t testing.TB, storeCfg string) string {
	t.Helper()
	raw, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := regexp.MustCompile(`(?m)^store:\n(  .*\n)+`).ReplaceAllString(string(raw), "store: "+storeCfg+"\n")
	if conf == string(raw) {
		t.Fatal("the devstack config has no store block to replace")
	}
	path := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// importStores are the two durable stores an import writes through, each
// with a way to read what it holds.
func importStores(t *testing.T) map[string]struct {
	cfg  string
	read func(t *testing.T, instance string) []store.Suppression
} {
	db := filepath.Join(t.TempDir(), "state.db")
	srv := redistest.Start(t)
	return map[string]struct {
		cfg  string
		read func(t *testing.T, instance string) []store.Suppression
	}{
		"embedded": {"{type: embedded, path: " + db + "}", func(t *testing.T, instance string) []store.Suppression {
			st, err := store.OpenEmbedded(db, store.EmbeddedOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			list, err := st.Suppressions(context.Background(), instance)
			if err != nil {
				t.Fatal(err)
			}
			return list
		}},
		"redis": {fmt.Sprintf("{type: redis, redis: {addr: %q}}", srv.Addr()), func(t *testing.T, instance string) []store.Suppression {
			st, err := store.NewRedis(context.Background(), store.RedisOptions{Addr: srv.Addr()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			list, err := st.Suppressions(context.Background(), instance)
			if err != nil {
				t.Fatal(err)
			}
			return list
		}},
	}
}

func suppressionImport(cfg string, file string, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	args = append(append([]string{"suppressions", "import", "--config", cfg}, args...), file)
	err := run(context.Background(), args, noenv, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

func writeCSV(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sup.csv")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSuppressionsImport: an import normalises phones as sends are
// normalised, takes an optional header and reason column, keeps what the
// store already holds, refuses a file with a bad row (naming its line)
// without writing anything unless --skip-bad, and is idempotent; through
// the embedded store and a real Redis.
func TestSuppressionsImport(t *testing.T) {
	good := "\uFEFFPhone,Reason\r\n" +
		"+966 50 111 1111,recipient_requested_stop\r\n" +
		"00966501111112\r\n" +
		"+٩٦٦٥٠١١١١١١٣,طلب العميل\r\n" + // Arabic-Indic digits, an Arabic reason
		"\r\n" +
		"+966-50-111-1111,later duplicate\r\n" +
		"+1 (415) 555-0100,ग्राहक ने मना किया\r\n"
	bad := "phone\n+966501111111\nnot a phone\n+966501111114,a,b\n+96650111111\n"
	for name, s := range importStores(t) {
		t.Run(name, func(t *testing.T) {
			cfg := importConfig(t, s.cfg)
			// An existing suppression the file repeats with another reason.
			existing := writeCSV(t, "+966501111111,kept\n")
			if _, errOut, err := suppressionImport(cfg, existing, "--instance", "inst_12345"); err != nil {
				t.Fatalf("import = %v\n%s", err, errOut)
			}

			// Bad rows: non-zero, each named by its line, nothing written.
			_, errOut, err := suppressionImport(cfg, writeCSV(t, bad), "--instance", "inst_12345")
			if err == nil || !strings.Contains(err.Error(), "3 bad rows, nothing imported") {
				t.Errorf("import of bad rows = %v, want an error counting 3 bad rows", err)
			}
			for _, l := range []string{`sup.csv:3: "not a phone" is not a valid phone number`, "sup.csv:4: 3 columns, want phone[,reason]", `sup.csv:5: "+96650111111" is not a valid phone number`} {
				if !strings.Contains(errOut, l) {
					t.Errorf("stderr = %q, want it to contain %q", errOut, l)
				}
			}
			if list := s.read(t, "inst_12345"); len(list) != 1 {
				t.Errorf("after a refused import the store holds %d suppressions, want the 1 it had", len(list))
			}

			out, errOut, err := suppressionImport(cfg, writeCSV(t, good), "--instance", "inst_12345")
			if err != nil {
				t.Fatalf("import = %v\n%s", err, errOut)
			}
			if !strings.Contains(out, "5 rows, 3 new suppressions for inst_12345, 2 already suppressed, 0 bad rows skipped") {
				t.Errorf("import said %q", out)
			}
			want := map[string]string{
				"+966501111111": "kept", "+966501111112": "manual_block", "+966501111113": "طلب العميل", "+14155550100": "ग्राहक ने मना किया",
			}
			list := s.read(t, "inst_12345")
			if len(list) != len(want) {
				t.Errorf("store holds %+v, want %v", list, want)
			}
			for _, sup := range list {
				if want[sup.Phone] != sup.Reason {
					t.Errorf("suppression %s reason = %q, want %q", sup.Phone, sup.Reason, want[sup.Phone])
				}
			}

			// Again: nothing new.
			if out, _, err := suppressionImport(cfg, writeCSV(t, good), "--instance", "inst_12345"); err != nil || !strings.Contains(out, " 0 new suppressions") {
				t.Errorf("second import = %q, %v, want 0 new", out, err)
			}

			// --skip-bad imports the good rows and still reports the bad.
			out, errOut, err = suppressionImport(cfg, writeCSV(t, bad+"+966501111115\n"), "--instance", "demo-support-line", "--skip-bad")
			if err != nil || !strings.Contains(out, "2 rows, 2 new suppressions for demo-support-line, 0 already suppressed, 3 bad rows skipped") || !strings.Contains(errOut, "sup.csv:3:") {
				t.Errorf("--skip-bad = %q, %q, %v", out, errOut, err)
			}
			if list := s.read(t, "demo-support-line"); len(list) != 2 {
				t.Errorf("--skip-bad wrote %+v, want 2", list)
			}
		})
	}
}

func TestSuppressionsImportRefuses(t *testing.T) {
	cfg := importConfig(t, "{type: embedded, path: "+filepath.Join(t.TempDir(), "state.db")+"}")
	file := writeCSV(t, "+966501111111\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown instance", []string{"--instance", "nobody"}, `--instance "nobody" is not an instance`},
		{"no instance", nil, `--instance "" is not an instance`},
		{"empty reason", []string{"--instance", "demo-support-line", "--reason", ""}, "--reason must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := suppressionImport(cfg, file, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("import %v = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	if _, _, err := suppressionImport(cfg, filepath.Join(t.TempDir(), "missing.csv"), "--instance", "demo-support-line"); err == nil {
		t.Error("import of a missing file succeeded")
	}
}
