package store

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
)

// Redis is the store for several sendguard replicas sharing one set of
// limits. Take is one Lua script (one round trip) that checks and consumes
// the monthly, daily and token-bucket limits atomically, so replicas are
// exact together. Keys are prefix + "{instance}:…", so one instance's keys
// share a cluster slot; quota keys expire a day after their calendar month.
//
// Pause and suppression reads, which every decision makes, are answered
// from a ristretto cache in front of Redis. Every write of either publishes
// on prefix + "invalidate"; each replica bumps a generation on receipt, and
// an entry read under an older generation is a miss. Until the replica's
// subscription is confirmed, and whenever it drops, reads bypass the cache;
// entries also expire after CacheTTL. What staleness remains is the pub/sub
// delivery delay between replicas (sub-millisecond on one network), bounded
// by CacheTTL should a message be lost without the subscription dropping.
//
// Every call is bounded by Timeout: when Redis is unreachable or slow, a
// call fails within it and the decision fails closed. A Take that times out
// after Redis ran it has consumed a unit that no one was told was allowed:
// under failure sendguard errs toward allowing fewer, never more.
type Redis struct {
	c      redis.UniversalClient
	o      RedisOptions
	cache  *ristretto.Cache[string, cached]
	gen    atomic.Uint64
	subbed atomic.Bool
	ps     *redis.PubSub
	stop   context.CancelFunc
	done   chan struct{}
	nonce  string        // this replica's, for unique sorted-set members
	seq    atomic.Uint64 // with nonce
}

type cached struct {
	v   bool
	gen uint64
}

// RedisOptions configure the Redis store: one server at Addr, a Redis
// Cluster whose seeds are Addrs, or the master SentinelMaster that the
// Sentinels at SentinelAddrs name (see newClient).
type RedisOptions struct {
	Addr, Username, Password string
	DB                       int
	Prefix                   string        // default "sendguard:"
	Timeout                  time.Duration // bound on every call; default 150ms
	Calendar                 limiter.Calendar
	CacheEntries             int64         // default 100,000; negative: no cache
	CacheTTL                 time.Duration // default 1s

	// Addrs are Redis Cluster seeds (DB must be 0); Addr is then unused.
	Addrs []string
	// SentinelMaster, when set, is the master the Sentinels at
	// SentinelAddrs name (authenticating to them as SentinelUsername and
	// SentinelPassword); Addr is then unused.
	SentinelMaster                     string
	SentinelAddrs                      []string
	SentinelUsername, SentinelPassword string
	TLS                                *tls.Config // nil: plain TCP
	// WaitReplicas, when positive, makes every write wait (WAIT) until
	// that many replicas have it, and fail when they do not within Timeout.
	WaitReplicas int
}

// NewRedis connects and subscribes to invalidations. It fails when Redis
// does not answer a PING within Timeout.
func NewRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	if o.Prefix == "" {
		o.Prefix = "sendguard:"
	}
	if o.Timeout <= 0 {
		o.Timeout = 150 * time.Millisecond
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = 100_000
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = time.Second
	}
	c := newClient(o)
	r := &Redis{c: c, o: o, done: make(chan struct{}), nonce: rand.Text()[:12]}
	// Start-up (a ping and six script loads) gets its own budget: the
	// per-call timeout (100ms by default) bounds a decision, and a start on
	// a busy node should not fail on it.
	pctx, cancel := context.WithTimeout(ctx, max(o.Timeout, 5*time.Second))
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %s: %w", o.where(), err)
	}
	// Load the scripts now, so the first burst of decisions does not all
	// miss EVALSHA and resend the script bodies.
	for _, sc := range []*redis.Script{takeScript, sendScript, violationScript, appendScript, leaseScript, releaseScript, refundScript} {
		if err := sc.Load(pctx, c).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis %s: load script: %w", o.where(), err)
		}
	}
	if o.CacheEntries > 0 {
		cache, err := ristretto.NewCache(&ristretto.Config[string, cached]{
			NumCounters: o.CacheEntries * 10, MaxCost: o.CacheEntries, BufferItems: 64,
		})
		if err != nil {
			c.Close()
			return nil, err
		}
		r.cache = cache
	}
	sctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	r.ps = c.Subscribe(sctx, o.Prefix+"invalidate")
	go r.subscribe(sctx)
	return r, nil
}

// subscribe follows the invalidation channel for the store's lifetime.
func (r *Redis) subscribe(ctx context.Context) {
	defer close(r.done)
	for {
		msg, err := r.ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Lost: bypass the cache until resubscribed. go-redis reconnects
			// and resubscribes on the next Receive.
			r.subbed.Store(false)
			r.gen.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				r.gen.Add(1) // whatever was cached before may have missed messages
				r.subbed.Store(true)
			}
		case *redis.Message:
			r.gen.Add(1)
		}
	}
}

// Close stops the subscription and closes the connections.
func (r *Redis) Close() error {
	r.stop()
	r.ps.Close() // unblocks a Receive waiting on the socket
	<-r.done
	if r.cache != nil {
		r.cache.Close()
	}
	return r.c.Close()
}

func (r *Redis) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.o.Timeout)
}

// quotaKey is the key of instance's quotas and bucket. A slow lane's
// bucket (abuse.SlowLaneID) shares its instance's slot, so that TakeSend's
// script may take both.
func (r *Redis) quotaKey(instance string) string {
	if base, ok := strings.CutSuffix(instance, slowSuffix); ok {
		return r.o.Prefix + "{" + base + "}:slow"
	}
	return r.o.Prefix + "{" + instance + "}:quota"
}

var slowSuffix = abuse.SlowLaneID("")

func (r *Redis) fanKey(instance string, body [16]byte) string {
	return r.o.Prefix + "{" + instance + "}:fan:" + hex.EncodeToString(body[:])
}
func (r *Redis) pairKey(instance, phone string) string {
	return r.o.Prefix + "{" + instance + "}:pair:" + phone
}
func (r *Redis) violKey(instance string) string { return r.o.Prefix + "{" + instance + "}:viol" }
func (r *Redis) supKey(instance string) string  { return r.o.Prefix + "{" + instance + "}:sup" }
func (r *Redis) pausedKey() string              { return r.o.Prefix + "paused" }
func (r *Redis) outboxKeys() []string {
	p := r.o.Prefix + "{outbox}:"
	return []string{p + "visible", p + "events", p + "attempts"}
}

// takeScript rolls the periods over, refills the bucket (times in
// microseconds, exact in a double), checks monthly, daily and tokens in that
// order, and consumes only when all pass. It returns the state before
// consumption; Go recomputes the same outcome from it with limiter.
var takeScript = redis.NewScript(luaBucket + `
local q, ok = bucket(KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
if ok then consume(KEYS[1], q) end
return {q[1], q[2], q[3], q[4], string.format('%.17g', q[5])}
`)

// luaBucket is the quota bucket both scripts share: bucket(key, daily,
// monthly, rate, burst) reads key's state with the periods rolled over and
// the tokens refilled to now, and says whether a send fits; consume(key, b)
// writes b less one send. ARGV[1] and ARGV[2] are the day and month
// numbers, ARGV[3] now in microseconds and ARGV[8] the key's expiry.
const luaBucket = `
local now, day, month = tonumber(ARGV[3]), tonumber(ARGV[1]), tonumber(ARGV[2])
local function bucket(key, daily, monthly, rate, burst)
  local s = redis.call('HMGET', key, 'd', 'dc', 'm', 'mc', 't', 'r')
  local d, dc, m, mc = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0, tonumber(s[4]) or 0
  local t, r = tonumber(s[5]), tonumber(s[6]) or 0
  if d ~= day then d = day; dc = 0 end
  if m ~= month then m = month; mc = 0 end
  if r == 0 or t == nil then
    t = burst
  elseif now > r then
    t = math.min(burst, t + (now - r) / 1e6 * rate)
  end
  t = math.min(t, burst)
  return {d, dc, m, mc, t}, mc < monthly and dc < daily and t >= 1
end
local function consume(key, b)
  redis.call('HSET', key, 'd', b[1], 'dc', b[2] + 1, 'm', b[3], 'mc', b[4] + 1, 't', string.format('%.17g', b[5] - 1), 'r', ARGV[3])
  redis.call('EXPIREAT', key, ARGV[8])
end
`

// Take checks and consumes in one round trip.
func (r *Redis) Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	micros := now.UnixMicro()
	res, err := takeScript.Run(ctx, r.c, []string{r.quotaKey(instance)},
		r.o.Calendar.Day(now), r.o.Calendar.Month(now), micros,
		l.Daily, l.Monthly, strconv.FormatFloat(l.Rate, 'g', -1, 64), l.Burst, r.expireAt(now),
	).Slice()
	if err != nil {
		return limiter.Outcome{}, fmt.Errorf("redis take %s: %w", instance, err)
	}
	pre, err := stateOf(res, micros)
	if err != nil {
		return limiter.Outcome{}, fmt.Errorf("redis take %s: %w", instance, err)
	}
	_, out := r.o.Calendar.Decide(pre, l, time.UnixMicro(micros))
	return out, nil
}

// expireAt is when a quota key written at now expires: a day after its
// month, never in the past when now is a replayed or test clock.
func (r *Redis) expireAt(now time.Time) int64 {
	_, monthEnd := r.o.Calendar.MonthBounds(now)
	at := monthEnd.Add(24 * time.Hour)
	if wall := time.Now().Add(24 * time.Hour); at.Before(wall) {
		at = wall
	}
	return at.Unix()
}

// sendScript is TakeSend: the abuse checks (a pair sorted set of send
// times, a fan-out sorted set of recipients scored by their last send, both
// in microseconds), then the slow lane and the quotas as takeScript does
// them, and only when all pass, every write. It returns {verdict, retry
// µs} on an abuse refusal, else {0, 0, slow lane refused (0/1), and the
// refusing or the quota bucket's state before consumption as takeScript}.
// Each sorted set expires a window after its last write, so Redis holds
// only the counts of the last window. An allowed send with a decision id
// (ARGV[20], the receipt's time to live in ms, not 0) also writes its
// refund receipt, KEYS[5] (see Refund), in the same script.
var sendScript = redis.NewScript(luaBucket + `
local pairLimit, phone = tonumber(ARGV[14]), ARGV[15]
local win, thr, blk = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
if pairLimit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 60000000)
  if redis.call('ZCARD', KEYS[4]) >= pairLimit then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {1, tonumber(oldest[2]) + 60000000 - now}
  end
end
local fan = win > 0 and (thr > 0 or blk > 0)
if fan then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - win)
  if not redis.call('ZSCORE', KEYS[3], phone) then
    local n = redis.call('ZCARD', KEYS[3])
    if blk > 0 and n + 1 > blk then
      return {2, 0}
    end
    if thr > 0 and n + 1 > thr then
      local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
      return {1, tonumber(oldest[2]) + win - now}
    end
  end
end
local slow, slowOK
if ARGV[9] == '1' then
  slow, slowOK = bucket(KEYS[2], tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]))
  if not slowOK then
    return {0, 0, 1, slow[1], slow[2], slow[3], slow[4], string.format('%.17g', slow[5])}
  end
end
local q, ok = bucket(KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
if ok then
  consume(KEYS[1], q)
  if slow then consume(KEYS[2], slow) end
  if pairLimit > 0 then
    redis.call('ZADD', KEYS[4], now, ARGV[19])
    redis.call('PEXPIRE', KEYS[4], 60000)
  end
  local fprev = false
  if fan then
    fprev = redis.call('ZSCORE', KEYS[3], phone)
    redis.call('ZADD', KEYS[3], now, phone)
    redis.call('PEXPIRE', KEYS[3], math.ceil(win / 1000))
  end
  if ARGV[20] ~= '0' then
    redis.call('HSET', KEYS[5], 'd', q[1], 'm', q[3], 's', slow and 1 or 0, 'b', ARGV[7], 'sb', ARGV[13],
      'fb', fan and ARGV[21] or '', 'fp', fprev or '', 'ph', phone, 'pm', pairLimit > 0 and ARGV[19] or '', 'at', ARGV[3])
    redis.call('PEXPIRE', KEYS[5], ARGV[20])
  end
end
return {0, 0, 0, q[1], q[2], q[3], q[4], string.format('%.17g', q[5])}
`)

// TakeSend checks and counts s's abuse limits and takes its slow lane and
// quotas in one script, one round trip: atomic across replicas, and
// nothing is written unless every check allows the send.
func (r *Redis) TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	micros := now.UnixMicro()
	slowOn, a := "0", s.Abuse
	if s.SlowLane.Rate > 0 {
		slowOn = "1"
	}
	fanWindow := int64(0)
	if a.FanOut() {
		fanWindow = a.FanOutWindow.Microseconds()
	}
	quota, fan := r.quotaKey(s.Instance), r.fanKey(s.Instance, s.Body)
	// Without a decision id no receipt is written: KEYS[5] is then only a
	// name in the instance's slot.
	receipt, receiptTTL := quota, "0"
	if s.Decision != "" {
		receipt, receiptTTL = r.receiptKey(s.Instance, s.Decision), receiptTTLms
	}
	keys := []string{quota, r.quotaKey(abuse.SlowLaneID(s.Instance)), fan, r.pairKey(s.Instance, s.Phone), receipt}
	res, err := sendScript.Run(ctx, r.c, keys,
		r.o.Calendar.Day(now), r.o.Calendar.Month(now), micros,
		s.Quota.Daily, s.Quota.Monthly, strconv.FormatFloat(s.Quota.Rate, 'g', -1, 64), s.Quota.Burst, r.expireAt(now),
		slowOn, s.SlowLane.Daily, s.SlowLane.Monthly, strconv.FormatFloat(s.SlowLane.Rate, 'g', -1, 64), s.SlowLane.Burst,
		max(a.PairPerMinute, 0), s.Phone, fanWindow, max(a.FanOutThrottle, 0), max(a.FanOutBlock, 0),
		r.nonce+strconv.FormatUint(r.seq.Add(1), 36), receiptTTL, fan[len(fan)-2*len(s.Body):], // the body's hex
	).Slice()
	if err != nil {
		return abuse.Outcome{}, fmt.Errorf("redis take send %s: %w", s.Instance, err)
	}
	if len(res) < 2 {
		return abuse.Outcome{}, fmt.Errorf("redis take send %s: unexpected script reply %v", s.Instance, res)
	}
	v, _ := res[0].(int64)
	if v != 0 {
		retry, _ := res[1].(int64)
		return abuse.Outcome{Verdict: abuse.Verdict(v), RetryAfter: time.Duration(retry) * time.Microsecond}, nil
	}
	if len(res) != 8 {
		return abuse.Outcome{}, fmt.Errorf("redis take send %s: unexpected script reply %v", s.Instance, res)
	}
	pre, err := stateOf(res[3:], micros)
	if err != nil {
		return abuse.Outcome{}, fmt.Errorf("redis take send %s: %w", s.Instance, err)
	}
	slow, _ := res[2].(int64)
	l := s.Quota
	if slow == 1 {
		l = s.SlowLane
	}
	_, out := r.o.Calendar.Decide(pre, l, time.UnixMicro(micros))
	return abuse.Outcome{Taken: out, SlowLane: slow == 1}, nil
}

var violationScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
return redis.call('ZCARD', KEYS[1])
`)

// Violation counts one violation of instance and returns how many fell in
// the last window, this one included, across replicas.
func (r *Redis) Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	n, err := violationScript.Run(ctx, r.c, []string{r.violKey(instance)},
		now.UnixMicro(), max(window.Microseconds(), 1), r.nonce+strconv.FormatUint(r.seq.Add(1), 36)).Int()
	if err != nil {
		return 0, fmt.Errorf("redis violation %s: %w", instance, err)
	}
	return n, nil
}

// ResetViolations forgets instance's violations.
func (r *Redis) ResetViolations(ctx context.Context, instance string) error {
	ctx, cancel := r.call(ctx)
	defer cancel()
	if err := r.c.Del(ctx, r.violKey(instance)).Err(); err != nil {
		return fmt.Errorf("redis reset violations %s: %w", instance, err)
	}
	return nil
}

// stateOf reads the script's {day, day count, month, month count, tokens}
// as a limiter.State refilled at micros.
func stateOf(res []any, micros int64) (limiter.State, error) {
	if len(res) != 5 {
		return limiter.State{}, fmt.Errorf("unexpected script reply %v", res)
	}
	ints := make([]int64, 4)
	for i := range ints {
		n, ok := res[i].(int64)
		if !ok {
			return limiter.State{}, fmt.Errorf("unexpected script reply %v", res)
		}
		ints[i] = n
	}
	ts, _ := res[4].(string)
	tokens, err := strconv.ParseFloat(ts, 64)
	if err != nil {
		return limiter.State{}, fmt.Errorf("unexpected tokens %q", ts)
	}
	return limiter.State{Day: int32(ints[0]), DayCount: ints[1], Month: int32(ints[2]), MonthCount: ints[3], Tokens: tokens, Refilled: micros * 1000}, nil
}

// Usage reads instance's use without consuming anything.
func (r *Redis) Usage(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	v, err := r.c.HMGet(ctx, r.quotaKey(instance), "d", "dc", "m", "mc", "t", "r").Result()
	if err != nil {
		return limiter.Usage{}, fmt.Errorf("redis usage %s: %w", instance, err)
	}
	num := func(x any) float64 {
		s, _ := x.(string)
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	var s limiter.State
	if v[5] != nil {
		s = limiter.State{Day: int32(num(v[0])), DayCount: int64(num(v[1])), Month: int32(num(v[2])), MonthCount: int64(num(v[3])),
			Tokens: num(v[4]), Refilled: int64(num(v[5])) * 1000}
	}
	s = r.o.Calendar.Current(s, l, time.UnixMicro(now.UnixMicro()))
	return limiter.Usage{Day: s.Day, Month: s.Month, DailyUsed: s.DayCount, MonthlyUsed: s.MonthCount, Tokens: s.Tokens}, nil
}

// cachedBool answers key from the cache when the subscription is up and
// the entry is of the current generation, else from read, caching it.
func (r *Redis) cachedBool(ctx context.Context, key string, read func(context.Context) (bool, error)) (bool, error) {
	useCache := r.cache != nil && r.subbed.Load()
	gen := r.gen.Load()
	if useCache {
		if e, ok := r.cache.Get(key); ok && e.gen == gen {
			return e.v, nil
		}
	}
	ctx, cancel := r.call(ctx)
	defer cancel()
	v, err := read(ctx)
	if err != nil {
		return false, err
	}
	if useCache && r.gen.Load() == gen {
		r.cache.SetWithTTL(key, cached{v: v, gen: gen}, 1, r.o.CacheTTL)
	}
	return v, nil
}

// invalidate tells every replica (this one first) that key changed.
func (r *Redis) invalidate(ctx context.Context, what string) error {
	r.gen.Add(1)
	if err := r.c.Publish(ctx, r.o.Prefix+"invalidate", what).Err(); err != nil {
		return fmt.Errorf("redis publish invalidation: %w", err)
	}
	return nil
}

// Suppressed reports whether phone is suppressed for instance.
func (r *Redis) Suppressed(ctx context.Context, instance, phone string) (bool, error) {
	v, err := r.cachedBool(ctx, "s\x00"+instance+"\x00"+phone, func(ctx context.Context) (bool, error) {
		return r.c.HExists(ctx, r.supKey(instance), phone).Result()
	})
	if err != nil {
		return false, fmt.Errorf("redis suppressed %s: %w", instance, err)
	}
	return v, nil
}

// Suppression returns one suppression, or ErrNotFound.
func (r *Redis) Suppression(ctx context.Context, instance, phone string) (Suppression, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	b, err := r.c.HGet(ctx, r.supKey(instance), phone).Bytes()
	if errors.Is(err, redis.Nil) {
		return Suppression{}, ErrNotFound
	}
	if err != nil {
		return Suppression{}, fmt.Errorf("redis suppression %s: %w", instance, err)
	}
	var s Suppression
	return s, json.Unmarshal(b, &s)
}

// PutSuppression adds or replaces a suppression and invalidates caches.
func (r *Redis) PutSuppression(ctx context.Context, s Suppression) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ctx, cancel := r.call(ctx)
	defer cancel()
	if err := r.c.HSet(ctx, r.supKey(s.Instance), s.Phone, v).Err(); err != nil {
		return fmt.Errorf("redis put suppression %s: %w", s.Instance, err)
	}
	return r.invalidate(ctx, "s:"+s.Instance)
}

// addScript sets each field of KEYS[1] (ARGV: field, value, field, value,
// …) that is not set yet and returns how many it set.
var addScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  n = n + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i+1])
end
return n
`)

// redisAddChunk is how many suppressions one script call sets: a call
// stays within a millisecond or two, well inside Timeout, and does not
// hold Redis up for the other replicas' decisions.
const redisAddChunk = 1000

// AddSuppressions adds every suppression of sups not in the store yet,
// keeping existing ones as they are; see Memory.AddSuppressions. Each
// instance's suppressions go in script calls of 1,000 (HSETNX on the
// instance's hash, one round trip each), then one invalidation per
// instance. Each call is atomic, the batch is not: an error leaves the
// calls before it written, and calling again with the same batch completes
// it.
func (r *Redis) AddSuppressions(ctx context.Context, sups []Suppression) (int, error) {
	if err := validBatch(sups); err != nil {
		return 0, err
	}
	var order []string
	by := map[string][]Suppression{}
	for _, s := range sups {
		if _, ok := by[s.Instance]; !ok {
			order = append(order, s.Instance)
		}
		by[s.Instance] = append(by[s.Instance], s)
	}
	added := 0
	for _, inst := range order {
		list := by[inst]
		for start := 0; start < len(list); start += redisAddChunk {
			chunk := list[start:min(start+redisAddChunk, len(list))]
			args := make([]any, 0, 2*len(chunk))
			for _, s := range chunk {
				v, err := json.Marshal(s)
				if err != nil {
					return added, err
				}
				args = append(args, s.Phone, v)
			}
			cctx, cancel := r.call(ctx)
			n, err := addScript.Run(cctx, r.c, []string{r.supKey(inst)}, args...).Int()
			cancel()
			if err != nil {
				return added, fmt.Errorf("redis add suppressions %s: %w", inst, err)
			}
			added += n
		}
		cctx, cancel := r.call(ctx)
		err := r.invalidate(cctx, "s:"+inst)
		cancel()
		if err != nil {
			return added, err
		}
	}
	return added, nil
}

// DeleteSuppression removes a suppression, or returns ErrNotFound.
func (r *Redis) DeleteSuppression(ctx context.Context, instance, phone string) error {
	ctx, cancel := r.call(ctx)
	defer cancel()
	n, err := r.c.HDel(ctx, r.supKey(instance), phone).Result()
	if err != nil {
		return fmt.Errorf("redis delete suppression %s: %w", instance, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return r.invalidate(ctx, "s:"+instance)
}

// Suppressions lists instance's suppressions ordered by phone.
func (r *Redis) Suppressions(ctx context.Context, instance string) ([]Suppression, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	all, err := r.c.HGetAll(ctx, r.supKey(instance)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis suppressions %s: %w", instance, err)
	}
	out := make([]Suppression, 0, len(all))
	for _, v := range all {
		var s Suppression
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Phone < out[j].Phone })
	return out, nil
}

// Paused reports whether instance is paused for review.
func (r *Redis) Paused(ctx context.Context, instance string) (bool, error) {
	v, err := r.cachedBool(ctx, "p\x00"+instance, func(ctx context.Context) (bool, error) {
		return r.c.SIsMember(ctx, r.pausedKey(), instance).Result()
	})
	if err != nil {
		return false, fmt.Errorf("redis paused %s: %w", instance, err)
	}
	return v, nil
}

// SetPaused pauses or resumes instance and invalidates caches.
func (r *Redis) SetPaused(ctx context.Context, instance string, paused bool) error {
	ctx, cancel := r.call(ctx)
	defer cancel()
	var err error
	if paused {
		err = r.c.SAdd(ctx, r.pausedKey(), instance).Err()
	} else {
		err = r.c.SRem(ctx, r.pausedKey(), instance).Err()
	}
	if err != nil {
		return fmt.Errorf("redis set paused %s: %w", instance, err)
	}
	return r.invalidate(ctx, "p:"+instance)
}

var appendScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
`)

// Append adds e to the outbox unless its ID is there; it is visible from
// its CreatedAt (or now, if that is earlier).
func (r *Redis) Append(ctx context.Context, e Event) error {
	e.Attempts, e.VisibleAt = 0, time.Time{}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	at := e.CreatedAt
	if now := time.Now(); at.IsZero() || at.After(now) {
		at = now
	}
	ctx, cancel := r.call(ctx)
	defer cancel()
	if err := appendScript.Run(ctx, r.c, r.outboxKeys(), e.ID, v, at.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("redis append %s: %w", e.ID, err)
	}
	return nil
}

var leaseScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[3], id)
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
  out[#out + 1] = redis.call('HINCRBY', KEYS[3], id, 1)
end
return out
`)

// Lease returns up to n visible events, earliest visible first, and hides
// them until now+d. The script makes a lease exclusive across replicas.
func (r *Redis) Lease(ctx context.Context, now time.Time, n int, d time.Duration) ([]Event, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	until := now.Add(d)
	res, err := leaseScript.Run(ctx, r.c, r.outboxKeys(), now.UnixMilli(), n, until.UnixMilli()).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis lease: %w", err)
	}
	out := make([]Event, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		js, _ := res[i].(string)
		var e Event
		if err := json.Unmarshal([]byte(js), &e); err != nil {
			return nil, fmt.Errorf("redis lease: event %q: %w", js, err)
		}
		attempts, _ := res[i+1].(int64)
		e.Attempts, e.VisibleAt = int(attempts), until
		out = append(out, e)
	}
	return out, nil
}

// Ack removes a delivered event.
func (r *Redis) Ack(ctx context.Context, id string) error {
	ctx, cancel := r.call(ctx)
	defer cancel()
	k := r.outboxKeys()
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, k[0], id)
		p.HDel(ctx, k[1], id)
		p.HDel(ctx, k[2], id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis ack %s: %w", id, err)
	}
	return nil
}

var releaseScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
return 0
`)

// Release makes an event visible again at at.
func (r *Redis) Release(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := r.call(ctx)
	defer cancel()
	n, err := releaseScript.Run(ctx, r.c, r.outboxKeys(), id, at.UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("redis release %s: %w", id, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Pending counts the events not yet acknowledged.
func (r *Redis) Pending(ctx context.Context) (int, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	n, err := r.c.HLen(ctx, r.outboxKeys()[1]).Result()
	if err != nil {
		return 0, fmt.Errorf("redis pending: %w", err)
	}
	return int(n), nil
}

// receiptTTLms is ReceiptTTL as the take script's ARGV[20].
var receiptTTLms = strconv.FormatInt(ReceiptTTL.Milliseconds(), 10)

// receiptKey is the refund receipt of decision id of instance: in the
// instance's slot, so the take and the refund scripts may write it.
func (r *Redis) receiptKey(instance, id string) string {
	return r.o.Prefix + "{" + instance + "}:rcpt:" + id
}

// refundScript gives back what the receipt KEYS[1] says its send took
// from the quota bucket KEYS[2], the slow lane KEYS[3], the fan-out set
// KEYS[4] and the pair set KEYS[5], and marks the receipt refunded, in one
// script. It returns 0 (no receipt, or one taken ReceiptTTL (ARGV[2], µs)
// or more before now (ARGV[1], µs)), 1 (refunded) or 2 (refunded before).
// A day or month count is given back only while the bucket still counts
// the receipt's day or month; a token never beyond the receipt's burst; a
// fan-out or pair record only while it is still the send's own.
var refundScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'd', 'm', 's', 'b', 'sb', 'fb', 'fp', 'ph', 'pm', 'at', 'x')
if not r[1] or tonumber(ARGV[1]) - tonumber(r[10]) >= tonumber(ARGV[2]) then return 0 end
if r[11] then return 2 end
local function give(key, burst)
  local s = redis.call('HMGET', key, 'd', 'dc', 'm', 'mc', 't', 'r')
  if not s[6] then return end
  if tonumber(s[1]) == tonumber(r[1]) and tonumber(s[2]) > 0 then redis.call('HSET', key, 'dc', tonumber(s[2]) - 1) end
  if tonumber(s[3]) == tonumber(r[2]) and tonumber(s[4]) > 0 then redis.call('HSET', key, 'mc', tonumber(s[4]) - 1) end
  local t = tonumber(s[5])
  if t then redis.call('HSET', key, 't', string.format('%.17g', math.min(tonumber(burst), t + 1))) end
end
give(KEYS[2], r[4])
if r[3] == '1' then give(KEYS[3], r[5]) end
if r[6] ~= '' then
  local cur = redis.call('ZSCORE', KEYS[4], r[8])
  if cur and tonumber(cur) == tonumber(r[10]) then
    if r[7] ~= '' then redis.call('ZADD', KEYS[4], r[7], r[8]) else redis.call('ZREM', KEYS[4], r[8]) end
  end
end
if r[9] ~= '' then redis.call('ZREM', KEYS[5], r[9]) end
redis.call('HSET', KEYS[1], 'x', 1)
return 1
`)

// Refund gives back what the allowed send of decision id took from
// instance: its quota units, its tokens and its abuse counts, as one
// script (atomic across replicas), when the instance holds a receipt for
// it that has not been refunded; see RefundResult. It reads the receipt
// first, for the names of the abuse keys it touches (one more round trip,
// on a failed send only); the script checks the receipt again.
func (r *Redis) Refund(ctx context.Context, instance, id string, now time.Time) (RefundResult, error) {
	ctx, cancel := r.call(ctx)
	defer cancel()
	rk := r.receiptKey(instance, id)
	v, err := r.c.HMGet(ctx, rk, "fb", "ph").Result()
	if err != nil {
		return RefundUnknown, fmt.Errorf("redis refund %s: %w", instance, err)
	}
	fb, _ := v[0].(string)
	ph, _ := v[1].(string)
	var body [16]byte
	if b, err := hex.DecodeString(fb); err == nil && len(b) == len(body) {
		copy(body[:], b)
	}
	keys := []string{rk, r.quotaKey(instance), r.quotaKey(abuse.SlowLaneID(instance)), r.fanKey(instance, body), r.pairKey(instance, ph)}
	n, err := refundScript.Run(ctx, r.c, keys, now.UnixMicro(), ReceiptTTL.Microseconds()).Int()
	if err != nil {
		return RefundUnknown, fmt.Errorf("redis refund %s: %w", instance, err)
	}
	switch n {
	case 1:
		return Refunded, nil
	case 2:
		return RefundDuplicate, nil
	}
	return RefundUnknown, nil
}
