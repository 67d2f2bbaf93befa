package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// BenchmarkRedisTopologies is decisions per second (TakeSend: the abuse
// counters, the slow lane and the quotas in one script) from 32 concurrent
// requests over 16 instances, on one redis-server and on a 3-master Redis
// Cluster (no replicas, so that the same machine runs the same number of
// writes), both started here.
func BenchmarkRedisTopologies(b *testing.B) {
	l := limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}
	a := abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1 << 30, FanOutBlock: 1 << 30, PairPerMinute: 1 << 30}
	run := func(b *testing.B, r *store.Redis) {
		var n atomic.Int64
		b.SetParallelism(32)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			s := abuse.Send{Instance: fmt.Sprintf("inst-%d", n.Add(1)%16), Body: abuse.BodyKey("Your order 1 has shipped"), Phone: "+966501234567", Abuse: a, Quota: l}
			for pb.Next() {
				if out, err := r.TakeSend(context.Background(), s, time.Now()); err != nil || !out.Allowed() {
					b.Fatal(out, err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	}
	// Started once: a sub-benchmark's function runs again for each b.N.
	single := openRedis(b, redistest.Start(b).Addr(), "bench:", time.Second)
	defer single.Close()
	cluster := openCluster(b, redistest.StartCluster(b, 3, 0), store.RedisOptions{Prefix: "bench:", Timeout: time.Second})
	defer cluster.Close()
	b.Run("single", func(b *testing.B) { run(b, single) })
	b.Run("cluster-3-masters", func(b *testing.B) { run(b, cluster) })
}
