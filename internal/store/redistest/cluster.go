package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/internal/testport"
)

// NodeTimeout is the cluster-node-timeout and Sentinel's
// down-after-milliseconds of the servers started here: a master that stops
// answering for this long is replaced, so failover tests stay short.
const NodeTimeout = 1000 * time.Millisecond

// startupWait bounds how long a cluster or a Sentinel group may take to
// form. Generous: CI runs packages in parallel on two cores.
const startupWait = 60 * time.Second

// Cluster is a Redis Cluster of real redis-server processes on loopback:
// masters, each with its replicas, every slot assigned.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// StartCluster starts masters × (1 + replicasPerMaster) cluster-enabled
// redis-servers, joins them with `redis-cli --cluster create`, and waits
// until every node reports cluster_state:ok and every replica is in sync.
// A replica is promoted when its master has not answered for NodeTimeout.
func StartCluster(t testing.TB, masters, replicasPerMaster int) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("redis-cli is not on PATH: install it (apt-get install redis-server; .ci/run does)")
	}
	dir := t.TempDir()
	c := &Cluster{t: t}
	var addrs []string
	for range masters * (1 + replicasPerMaster) {
		port := testport.Get(t)
		// The bus port would default to port+10000, which may lie in the
		// kernel's ephemeral range: reserve it like the data port.
		bus := testport.Get(t)
		s := startWith(t, port,
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout.Milliseconds())),
			"--cluster-replica-validity-factor", "0",
			"--cluster-require-full-coverage", "yes")
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy()
	return c
}

// Addrs are the seed addresses of every node.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

func admin(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: time.Second, MaxRetries: -1, DisableIdentity: true})
}

// query runs one command on addr with a short deadline.
func query(addr string, args ...any) (any, error) {
	a := admin(addr)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return a.Do(ctx, args...).Result()
}

// poll calls ok until it returns true, or fails the test after startupWait.
func poll(t testing.TB, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(startupWait)
	last := ""
	for {
		done, state := ok()
		if done {
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s not reached within %s; last: %s", what, startupWait, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitHealthy waits until every running node reports cluster_state:ok,
// every slot is served by a running master, and each running replica's
// link to its master is up.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	poll(c.t, "cluster healthy", func() (bool, string) {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			v, err := query(n.Addr(), "cluster", "info")
			if err != nil {
				return false, err.Error()
			}
			if info, _ := v.(string); !strings.Contains(info, "cluster_state:ok") {
				return false, n.Addr() + ": " + firstLine(info)
			}
			v, err = query(n.Addr(), "info", "replication")
			if err != nil {
				return false, err.Error()
			}
			if info, _ := v.(string); strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up") {
				return false, n.Addr() + ": replica link down"
			}
		}
		for _, m := range c.masters() {
			if !c.byAddr(m).Running() {
				return false, "slots still on stopped master " + m
			}
		}
		return true, ""
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

func (c *Cluster) byAddr(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return &Server{}
}

// masters are the addresses of the nodes that serve slots, as a running
// node sees them.
func (c *Cluster) masters() []string {
	var out []string
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		v, err := query(n.Addr(), "cluster", "shards")
		if err != nil {
			continue
		}
		for _, sh := range v.([]any) {
			m := asMap(sh)
			if slots, _ := m["slots"].([]any); len(slots) == 0 {
				continue
			}
			nodes, _ := m["nodes"].([]any)
			for _, nd := range nodes {
				nm := asMap(nd)
				if nm["role"] == "master" && nm["health"] == "online" {
					out = append(out, fmt.Sprintf("%v:%v", nm["ip"], nm["port"]))
				}
			}
		}
		return out
	}
	return out
}

// asMap reads a RESP2 flat key-value array (or a RESP3 map).
func asMap(v any) map[string]any {
	out := map[string]any{}
	switch x := v.(type) {
	case map[any]any:
		for k, v := range x {
			out[fmt.Sprint(k)] = v
		}
	case []any:
		for i := 0; i+1 < len(x); i += 2 {
			out[fmt.Sprint(x[i])] = x[i+1]
		}
	}
	return out
}

// Slot is key's hash slot, as the cluster computes it (CLUSTER KEYSLOT).
func (c *Cluster) Slot(key string) int {
	c.t.Helper()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		v, err := query(n.Addr(), "cluster", "keyslot", key)
		if err != nil {
			c.t.Fatalf("CLUSTER KEYSLOT %q: %v", key, err)
		}
		return int(v.(int64))
	}
	c.t.Fatal("no running node")
	return 0
}

// MasterOf is the running master that serves key's slot.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	slot := c.Slot(key)
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		v, err := query(n.Addr(), "cluster", "slots")
		if err != nil {
			continue
		}
		for _, r := range v.([]any) {
			rng := r.([]any)
			lo, hi := rng[0].(int64), rng[1].(int64)
			if int64(slot) >= lo && int64(slot) <= hi {
				m := rng[2].([]any)
				return c.byAddr(fmt.Sprintf("%v:%v", m[0], m[1]))
			}
		}
	}
	c.t.Fatalf("no master serves slot %d", slot)
	return nil
}
