package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// TestReplicasShareOneQuotaOnClusterAndSentinel: two sendguard processes
// configured with store.redis.addrs (a 3-master Redis Cluster) or
// store.redis.sentinel, 600 concurrent sends split between them on a
// 100/day plan: exactly 100 allowed.
func TestReplicasShareOneQuotaOnClusterAndSentinel(t *testing.T) {
	addrs := func(a []string) string { b, _ := json.Marshal(a); return string(b) }
	for name, storeCfg := range map[string]func(t *testing.T) string{
		"cluster": func(t *testing.T) string {
			c := redistest.StartCluster(t, 3, 0)
			return fmt.Sprintf("{type: redis, redis: {addrs: %s, timeout: 450ms}}", addrs(c.Addrs()))
		},
		"sentinel": func(t *testing.T) string {
			s := redistest.StartSentinel(t)
			return fmt.Sprintf("{type: redis, redis: {sentinel: {master_name: %s, addrs: %s}, timeout: 450ms}}", redistest.MasterName, addrs(s.SentinelAddrs()))
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfgText := storeCfg(t)
			var clients [2]authv3.AuthorizationClient
			for i := range clients {
				cfg, grpcAddr, adminAddr := writeProcessConfig(t, t.TempDir(), cfgText)
				clients[i] = dial(t, startChild(t, cfg, grpcAddr, adminAddr).grpc)
			}
			allowed, daily, other := sendAcross(t, clients[:], 600)
			if allowed != 100 || daily != 500 || other != 0 {
				t.Errorf("600 sends over two replicas on 100/day (%s): %d allowed, %d daily, %d other; want exactly 100 allowed", name, allowed, daily, other)
			}
		})
	}
}

// TestClusterFailoverFailsClosed: a sendguard process on a 3-master Redis
// Cluster (a replica each) with the default 150ms store timeout; the master
// holding instance shop's slot is killed under load. Every Check is
// answered within Envoy's 0.5s: allowed, the plan's 429, or the documented
// 503 policy_check_unavailable, byte for byte; sends are allowed again
// after the replica's promotion without a restart; at most the plan's 100
// are allowed in all.
func TestClusterFailoverFailsClosed(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	b, _ := json.Marshal(c.Addrs())
	cfg, grpcAddr, adminAddr := writeProcessConfig(t, t.TempDir(), fmt.Sprintf("{type: redis, redis: {addrs: %s}}", b))
	cl := dial(t, startChild(t, cfg, grpcAddr, adminAddr).grpc)
	unavailable := string(catalog.Body(catalog.PolicyCheckUnavailable, catalog.Details{}))

	var allowed, limited, failed atomic.Int64
	var resumed atomic.Bool // an allow after a 503
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(40 * time.Millisecond): // ~50 sends/s: the quota outlasts the failover
				}
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				resp, err := cl.Check(ctx, sendCheck("shop"))
				cancel()
				switch d := resp.GetDeniedResponse(); {
				case status.Code(err) == codes.DeadlineExceeded:
					t.Error("sendguard did not answer within Envoy's ext_authz timeout during the failover")
				case err != nil:
					t.Error(err)
				case resp.GetOkResponse() != nil:
					allowed.Add(1)
					if failed.Load() > 0 {
						resumed.Store(true)
					}
				case d.GetStatus().GetCode() == 429:
					limited.Add(1)
				case d.GetStatus().GetCode() == 503 && d.Body == unavailable:
					failed.Add(1)
				default:
					t.Errorf("during the failover: %v, want allowed, 429 or 503 %s", resp, unavailable)
				}
			}
		})
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s (allowed %d, 429 %d, 503 %d)", what, allowed.Load(), limited.Load(), failed.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("10 sends allowed", func() bool { return allowed.Load() >= 10 })
	victim := c.MasterOf("sendguard:{shop}:quota")
	victim.Stop()
	killed := time.Now()
	waitFor("sends allowed again after the failover", resumed.Load)
	t.Logf("sends resumed %v after the kill; %d answered 503 meanwhile", time.Since(killed).Round(time.Millisecond), failed.Load())
	halt()
	if allowed.Load() > 100 {
		t.Errorf("%d sends allowed on a 100/day plan", allowed.Load())
	}
}
