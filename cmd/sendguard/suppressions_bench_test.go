package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/testport"
)

// BenchmarkSuppressionsMillion measures the bulk path end to end with the
// real binary: `sendguard suppressions import` of 1,000,000 generated
// phones (shuffled) into a fresh embedded store, then `sendguard serve` on
// that store: the time until /healthz answers (start-up, the store opened
// and every page checked) and the server's resident memory then. Run it
// alone (make bench-suppressions); it reports, never asserts, times.
func BenchmarkSuppressionsMillion(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	bin := filepath.Join(dir, "sendguard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	csvPath := filepath.Join(dir, "million.csv")
	f, err := os.Create(csvPath)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("phone,reason\n")
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		fmt.Fprintf(w, "+96650%07d\n", i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	db := filepath.Join(dir, "state.db")
	cfg := importConfig(b, "{type: embedded, path: "+db+"}")

	for b.Loop() {
		os.Remove(db)
		start := time.Now()
		out, err := exec.Command(bin, "suppressions", "import", "--config", cfg, "--instance", "inst_12345", csvPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d new suppressions", n)) {
			b.Fatalf("import: %v\n%s", err, out)
		}
		b.ReportMetric(time.Since(start).Seconds(), "import-s")
		fi, err := os.Stat(db)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/1e6, "file-MB")

		grpcAddr, adminAddr := benchAddr(b), benchAddr(b)
		start = time.Now()
		srv := exec.Command(bin, "serve", "--config", cfg, "--grpc-addr", grpcAddr, "--admin-addr", adminAddr)
		if err := srv.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			resp, err := http.Get("http://" + adminAddr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Since(start) > time.Minute {
				srv.Process.Kill()
				b.Fatal("serve did not answer /healthz within a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "startup-s")
		b.ReportMetric(rssMB(b, srv.Process.Pid), "startup-rss-MB")
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	}
}

func benchAddr(b *testing.B) string { return testport.Addr(b) }

// rssMB is the resident set of process pid (VmRSS), in MB.
func rssMB(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
