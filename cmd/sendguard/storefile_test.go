package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamagedStoreFile: the real binary, started on a damaged embedded
// store file, exits non-zero with an error that says what is wrong and how
// to recover; --store-reset moves the file aside and serves from empty
// state; a healthy file with --store-reset is kept as it is.
func TestDamagedStoreFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	cfg, grpcAddr, adminAddr := writeProcessConfig(t, dir, "{type: embedded, path: "+db+"}")

	// A healthy file with state: one allowed send, one pause.
	c := startChild(t, cfg, grpcAddr, adminAddr)
	if code := c.admin("POST", "/v1/instances/other/pause", "", nil); code != 200 {
		t.Fatalf("pause = %d", code)
	}
	c.cmd.Process.Signal(os.Interrupt)
	c.cmd.Wait()

	// --store-reset on a healthy file changes nothing.
	c = startChild(t, cfg, grpcAddr, adminAddr, "--store-reset")
	var u usageReply
	c.admin("GET", "/v1/instances/other/usage", "", &u)
	if !u.Paused {
		t.Fatal("--store-reset on a healthy store lost its state (the pause)")
	}
	c.cmd.Process.Signal(os.Interrupt)
	c.cmd.Wait()

	for _, damage := range []struct {
		name string
		do   func() error
		want string
	}{
		{"truncated", func() error { return os.Truncate(db, 16<<10) }, "truncated"},
		{"empty", func() error { return os.Truncate(db, 0) }, "empty (0 bytes)"},
	} {
		t.Run(damage.name, func(t *testing.T) {
			if err := damage.do(); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(binary(t), "serve", "--config", cfg).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("serve on a %s store = %v, want a non-zero exit\n%s", damage.name, err, out)
			}
			if s := string(out); !strings.Contains(s, damage.want) || !strings.Contains(s, "--store-reset") || strings.Contains(s, "SIGBUS") || strings.Contains(s, "goroutine ") {
				t.Errorf("serve on a %s store said:\n%s\nwant a clear error naming %q and --store-reset, no crash", damage.name, s, damage.want)
			}

			c := startChild(t, cfg, grpcAddr, adminAddr, "--store-reset")
			var u usageReply
			c.admin("GET", "/v1/instances/other/usage", "", &u)
			if u.Paused {
				t.Error("after --store-reset the old state is still served")
			}
			c.cmd.Process.Signal(os.Interrupt)
			c.cmd.Wait()
			aside, _ := filepath.Glob(db + ".corrupt-*")
			if len(aside) == 0 {
				t.Error("--store-reset did not keep the damaged file")
			}
			for _, a := range aside {
				os.Remove(a)
			}
		})
	}
}
