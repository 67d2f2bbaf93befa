package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
	"github.com/sendguard/sendguard/internal/store/storetest"
)

// openCluster opens a store on the cluster c with o's other options.
func openCluster(t testing.TB, c *redistest.Cluster, o store.RedisOptions) *store.Redis {
	t.Helper()
	o.Addrs = c.Addrs()
	r, err := store.NewRedis(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// openSentinel opens a store on the master the Sentinels of s name.
func openSentinel(t testing.TB, s *redistest.Sentinel, o store.RedisOptions) *store.Redis {
	t.Helper()
	o.SentinelMaster, o.SentinelAddrs = redistest.MasterName, s.SentinelAddrs()
	r, err := store.NewRedis(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// scriptKeys records the keys of every script call that passes through a
// client, single or pipelined.
type scriptKeys struct {
	mu    sync.Mutex
	calls [][]string
}

func (k *scriptKeys) DialHook(next redis.DialHook) redis.DialHook { return next }

func (k *scriptKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		k.record(cmd)
		return next(ctx, cmd)
	}
}

func (k *scriptKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			k.record(c)
		}
		return next(ctx, cmds)
	}
}

func (k *scriptKeys) record(cmd redis.Cmder) {
	if !slices.Contains([]string{"eval", "evalsha", "eval_ro", "evalsha_ro"}, cmd.Name()) {
		return
	}
	args := cmd.Args()
	n, _ := args[2].(int)
	keys := make([]string, 0, n)
	for _, a := range args[3 : 3+n] {
		keys = append(keys, fmt.Sprint(a))
	}
	k.mu.Lock()
	k.calls = append(k.calls, keys)
	k.mu.Unlock()
}

// check fails t unless every recorded script call's keys lie in one slot,
// as the cluster computes slots (CLUSTER KEYSLOT). It returns how many
// calls it checked.
func (k *scriptKeys) check(t *testing.T, c *redistest.Cluster) int {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	slot := map[string]int{}
	for _, keys := range k.calls {
		for _, key := range keys {
			if _, ok := slot[key]; !ok {
				slot[key] = c.Slot(key)
			}
		}
		for _, key := range keys[1:] {
			if slot[key] != slot[keys[0]] {
				t.Errorf("script call with keys %q: %q in slot %d, %q in slot %d; want one slot", keys, keys[0], slot[keys[0]], key, slot[key])
				break
			}
		}
	}
	return len(k.calls)
}

// TestRedisClusterContract: the store contract on a 3-master Redis
// Cluster (each master with a replica), and every script call the suite
// makes has all its keys in one hash slot, as CLUSTER KEYSLOT says.
func TestRedisClusterContract(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	var rec scriptKeys
	prefix := map[storetest.Store]string{}
	open := func(t *testing.T, p string) *store.Redis {
		r := openCluster(t, c, store.RedisOptions{Prefix: p, Timeout: exactTimeout})
		r.AddHook(&rec)
		prefix[r] = p
		return r
	}
	storetest.Run(t, storetest.Harness{PagesUnordered: true,
		Open: func(t *testing.T) storetest.Store { return open(t, fmt.Sprintf("c%d:", prefixes.Add(1))) },
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			s.Close()
			return open(t, prefix[s])
		},
	})
	if n := rec.check(t, c); n < 1000 {
		t.Errorf("checked the slots of %d script calls, want the suite's thousands", n)
	}
}

// TestRedisSentinelContract: the store contract on a master and replica
// found through three Sentinels.
func TestRedisSentinelContract(t *testing.T) {
	s := redistest.StartSentinel(t)
	prefix := map[storetest.Store]string{}
	open := func(t *testing.T, p string) *store.Redis {
		r := openSentinel(t, s, store.RedisOptions{Prefix: p, Timeout: exactTimeout})
		prefix[r] = p
		return r
	}
	storetest.Run(t, storetest.Harness{PagesUnordered: true,
		Open: func(t *testing.T) storetest.Store { return open(t, fmt.Sprintf("s%d:", prefixes.Add(1))) },
		Reopen: func(t *testing.T, st storetest.Store) storetest.Store {
			st.Close()
			return open(t, prefix[st])
		},
	})
}

// multilingualInstances are instance ids in several scripts, with emoji,
// combining marks, and braces (which end or start a hash tag). An id that
// begins with "}" would make the tag of its keys empty, hashing each whole
// key to its own slot: the configuration refuses such ids (internal/config).
var multilingualInstances = []string{
	"shop", "متجر-الرياض", "दुकान", "İstanbul-dükkân", "🛍️-store", "cafe\u0301", "a{b", "a}b", "{x}", "x{}", "{}", "x}",
}

// TestRedisClusterKeysOneSlot: for instances named in several scripts and
// with braces, a send's script touches the quota, slow lane, fan-out and
// pair keys of one slot, the violation and outbox scripts likewise, and
// the cluster answers every call (a CROSSSLOT error would fail it).
func TestRedisClusterKeysOneSlot(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	var rec scriptKeys
	r := openCluster(t, c, store.RedisOptions{Prefix: "slots:", Timeout: exactTimeout})
	defer r.Close()
	r.AddHook(&rec)
	ctx := context.Background()
	l := abuse.Limits{FanOutWindow: time.Minute, FanOutThrottle: 100, FanOutBlock: 200, PairPerMinute: 10}
	q := limiter.Limits{Daily: 100, Monthly: 1000, Rate: 100, Burst: 100}
	var wg sync.WaitGroup
	for _, inst := range multilingualInstances {
		for i := range 8 {
			wg.Go(func() {
				s := abuse.Send{Instance: inst, Body: abuse.BodyKey(fmt.Sprintf("مرحبا %d — नमस्ते 👋", i)), Phone: fmt.Sprintf("+9665010%05d", i),
					Abuse: l, Quota: q, SlowLane: q}
				if out, err := r.TakeSend(ctx, s, storetest.Base); err != nil || !out.Allowed() {
					t.Errorf("TakeSend(%q) = %+v, %v; want allowed", inst, out, err)
				}
				if _, err := r.Violation(ctx, inst, time.Hour, storetest.Base); err != nil {
					t.Errorf("Violation(%q): %v", inst, err)
				}
				if _, err := r.Take(ctx, abuse.SlowLaneID(inst), q, storetest.Base); err != nil {
					t.Errorf("Take(%q): %v", abuse.SlowLaneID(inst), err)
				}
			})
		}
	}
	wg.Wait()
	if err := r.Append(ctx, store.Event{ID: "e1", Kind: "recipient.opted_out", Body: []byte(`{}`), CreatedAt: storetest.Base}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lease(ctx, time.Now(), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := rec.check(t, c); n < 3*8*len(multilingualInstances) {
		t.Errorf("checked %d script calls, want at least %d", n, 3*8*len(multilingualInstances))
	}
}

// TestRedisClusterReplicasExact: two stores (two sendguard replicas) on a
// 3-master cluster split 1,200 concurrent sends over six instances, whose
// slots lie on different masters, each on a 100/day limit: exactly 100
// allowed per instance.
func TestRedisClusterReplicasExact(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	o := store.RedisOptions{Prefix: "x:", Timeout: exactTimeout}
	a, b := openCluster(t, c, o), openCluster(t, c, o)
	defer a.Close()
	defer b.Close()
	instances := []string{"shop", "متجر", "दुकान", "dükkân", "🛍️", "e\u0301"}
	masters := map[string]bool{}
	for _, inst := range instances {
		masters[c.MasterOf("x:{"+inst+"}:quota").Addr()] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the instances' slots lie on %d master(s), want several", len(masters))
	}
	q := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1e6, Burst: 1e6}
	var mu sync.Mutex
	allowed := map[string]int{}
	var wg sync.WaitGroup
	for i := range 1200 {
		s, inst := a, instances[i%len(instances)]
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			out, err := s.TakeSend(context.Background(), abuse.Send{Instance: inst, Phone: fmt.Sprintf("+96650100%04d", i), Quota: q}, storetest.Base)
			if err != nil {
				t.Error(err)
			} else if out.Allowed() {
				mu.Lock()
				allowed[inst]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, inst := range instances {
		if allowed[inst] != 100 {
			t.Errorf("two replicas on a cluster allowed %d of 200 sends of %q on 100/day, want exactly 100", allowed[inst], inst)
		}
	}
}

// TestRedisClusterInvalidation: a replica's cached "not suppressed" / "not
// paused" gives way as soon as another replica writes, on a cluster, for
// instances whose keys lie on different masters.
func TestRedisClusterInvalidation(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	o := store.RedisOptions{Prefix: "inv:", Timeout: time.Second}
	a, b := openCluster(t, c, o), openCluster(t, c, o)
	defer a.Close()
	defer b.Close()
	invalidation(t, a, b, []string{"shop", "متجر", "दुकान", "🛍️"})
}

// TestRedisSentinelInvalidation is TestRedisClusterInvalidation through
// Sentinel.
func TestRedisSentinelInvalidation(t *testing.T) {
	s := redistest.StartSentinel(t)
	o := store.RedisOptions{Prefix: "inv:", Timeout: time.Second}
	a, b := openSentinel(t, s, o), openSentinel(t, s, o)
	defer a.Close()
	defer b.Close()
	invalidation(t, a, b, []string{"shop", "متجر"})
}

func invalidation(t *testing.T, a, b *store.Redis, instances []string) {
	ctx := context.Background()
	get := func(v bool, err error) bool {
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, inst := range instances {
		phone := "+966501234567"
		suppressed := func() bool { return get(a.Suppressed(ctx, inst, phone)) }
		paused := func() bool { return get(a.Paused(ctx, inst)) }
		eventually(t, "replica a caching "+inst, func() bool { return !suppressed() && !paused() })
		if err := b.PutSuppression(ctx, store.Suppression{Instance: inst, Phone: phone, Reason: "recipient_requested_stop"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a sees b's suppression of "+inst, suppressed)
		if err := b.SetPaused(ctx, inst, true); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a sees b's pause of "+inst, paused)
		if err := b.DeleteSuppression(ctx, inst, phone); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a sees b's delete of "+inst, func() bool { return !suppressed() })
	}
}
