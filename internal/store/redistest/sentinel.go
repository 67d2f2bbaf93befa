package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/testport"
)

// MasterName is the name the Sentinels of StartSentinel monitor.
const MasterName = "sendguard"

// Sentinel is a master, its replica and three Sentinels watching them, all
// real redis-server processes on loopback.
type Sentinel struct {
	t         testing.TB
	Data      []*Server // the master first, then the replica
	Sentinels []*Server
}

// StartSentinel starts a master, a replica of it and three Sentinels
// (quorum 2, down-after-milliseconds NodeTimeout), and waits until every
// Sentinel sees the master, the replica and the two other Sentinels.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{t: t}
	m := startWith(t, testport.Get(t))
	r := startWith(t, testport.Get(t), "--replicaof", "127.0.0.1", strconv.Itoa(m.Port()))
	s.Data = []*Server{m, r}
	dir := t.TempDir()
	for i := range 3 {
		port := testport.Get(t)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
		body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			MasterName, m.Port(), MasterName, NodeTimeout.Milliseconds(), MasterName, MasterName)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		// The config file first: Sentinel rewrites it as it learns.
		sv := &Server{t: t, port: port, dir: dir}
		sv.argv0 = []string{conf, "--sentinel"}
		sv.start()
		t.Cleanup(sv.Stop)
		s.Sentinels = append(s.Sentinels, sv)
	}
	s.WaitHealthy()
	return s
}

// SentinelAddrs are the Sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	var out []string
	for _, sv := range s.Sentinels {
		out = append(out, sv.Addr())
	}
	return out
}

// Master is the data server the Sentinels name master now.
func (s *Sentinel) Master() *Server {
	s.t.Helper()
	for _, sv := range s.Sentinels {
		v, err := query(sv.Addr(), "sentinel", "get-master-addr-by-name", MasterName)
		if err != nil {
			continue
		}
		a := v.([]any)
		addr := fmt.Sprintf("%v:%v", a[0], a[1])
		for _, d := range s.Data {
			if d.Addr() == addr {
				return d
			}
		}
	}
	s.t.Fatal("no Sentinel names a known master")
	return nil
}

// WaitHealthy waits until every running Sentinel names a running master
// that has a replica in sync, and knows the two other Sentinels.
func (s *Sentinel) WaitHealthy() {
	s.t.Helper()
	poll(s.t, "sentinel group healthy", func() (bool, string) {
		for _, sv := range s.Sentinels {
			v, err := query(sv.Addr(), "sentinel", "master", MasterName)
			if err != nil {
				return false, err.Error()
			}
			m := asMap(v)
			addr := fmt.Sprintf("%v:%v", m["ip"], m["port"])
			flags := fmt.Sprint(m["flags"])
			if flags != "master" || m["num-other-sentinels"] != "2" || m["num-slaves"] == "0" {
				return false, fmt.Sprintf("%s: master %s flags %s, %v replicas, %v other sentinels",
					sv.Addr(), addr, flags, m["num-slaves"], m["num-other-sentinels"])
			}
			running := false
			for _, d := range s.Data {
				running = running || (d.Addr() == addr && d.Running())
			}
			if !running {
				return false, sv.Addr() + " names stopped master " + addr
			}
			v, err = query(addr, "info", "replication")
			if err != nil {
				return false, err.Error()
			}
			if info, _ := v.(string); !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
				return false, addr + ": replica not online"
			}
		}
		return true, ""
	})
}
