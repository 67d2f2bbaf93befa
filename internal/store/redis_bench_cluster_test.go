package store_test

import (
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// BenchmarkRedisTopologies is decisions per second (TakeSend: the abuse
// counters, the slow lane and the quotas in one script) from 32 concurrent
// requests over 16 instances, on one redis-server and on a 3-master Redis
// Cluster (no replicas, so that the same machine runs the same number of
// writes), both started here.
func BenchmarkRedisTopologies(b *testing.B) {
	// Started once: a sub-benchmark's function runs again for each b.N.
	single := openRedis(b, redistest.Start(b).Addr(), "bench:", time.Second)
	defer single.Close()
	cluster := openCluster(b, redistest.StartCluster(b, 3, 0), store.RedisOptions{Prefix: "bench:", Timeout: time.Second})
	defer cluster.Close()
	b.Run("single", func(b *testing.B) { benchTakeSend(b, single) })
	b.Run("cluster-3-masters", func(b *testing.B) { benchTakeSend(b, cluster) })
}
