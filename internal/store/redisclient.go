package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// newClient is the one client behind the Redis store, for each of the
// three topologies RedisOptions describe: a single server (Addr), a Redis
// Cluster (Addrs: seeds; the client learns the slot map and follows MOVED
// and ASK), or a master found through Sentinels (SentinelMaster). Each
// bounds its calls by Timeout: the context of every call carries the
// deadline (ContextTimeoutEnabled), so redirections, retries and the
// search for a new master after a failover all fit inside it.
func newClient(o RedisOptions) redis.UniversalClient {
	u := &redis.UniversalOptions{
		Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		ContextTimeoutEnabled: true,
		DialerRetries:         1, // a refused dial fails the call at once: retrying it only spends the timeout
		MaxRetries:            1,
		PoolSize:              64,
		DisableIdentity:       true,
		TLSConfig:             o.TLS,
	}
	switch {
	case o.SentinelMaster != "":
		u.MasterName = o.SentinelMaster
		u.Addrs = o.SentinelAddrs
		u.SentinelUsername, u.SentinelPassword = o.SentinelUsername, o.SentinelPassword
	case len(o.Addrs) > 0:
		u.Addrs = o.Addrs
		u.IsClusterMode = true
		u.DB = 0
	}
	c := redis.NewUniversalClient(u)
	if cc, ok := c.(*redis.ClusterClient); ok {
		cc.AddHook(reloadOnFailure{cc})
	}
	if o.WaitReplicas > 0 {
		return &waitClient{UniversalClient: c, n: o.WaitReplicas}
	}
	return c
}

// reloadOnFailure asks the cluster for its slot map again after a call
// fails without an answer from Redis (a refused connection, a timeout) or
// with CLUSTERDOWN. go-redis follows MOVED and ASK itself, but on a dead
// master it only retries, and reloads the map every 10 seconds: after a
// failover, calls would keep going to the dead node until then. Reloads
// are coalesced by go-redis (one at a time, 200ms apart).
type reloadOnFailure struct{ cc *redis.ClusterClient }

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(err)
		return err
	}
}

func (h reloadOnFailure) after(err error) {
	var answered redis.Error
	if err == nil || errors.Is(err, redis.Nil) || (errors.As(err, &answered) && !strings.HasPrefix(err.Error(), "CLUSTERDOWN")) {
		return
	}
	h.cc.ReloadState(context.Background())
}

// where names the Redis the options point at, for errors.
func (o RedisOptions) where() string {
	switch {
	case o.SentinelMaster != "":
		return "sentinel " + o.SentinelMaster + " at " + strings.Join(o.SentinelAddrs, ",")
	case len(o.Addrs) > 0:
		return "cluster " + strings.Join(o.Addrs, ",")
	}
	return o.Addr
}

// RedisTLS is the TLS configuration of a managed Redis: caFile (PEM), when
// set, replaces the system roots; serverName, when set, is the name the
// certificate must carry (else the host of the address dialled);
// insecureSkipVerify accepts any certificate (for tests only).
func RedisTLS(caFile, serverName string, insecureSkipVerify bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, InsecureSkipVerify: insecureSkipVerify}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls ca_file %s: no PEM certificate in it", caFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// waitClient is the client with store.redis.wait_replicas set: every write
// the store makes (the scripts, which count, and the suppression, pause and
// violation writes) is followed on the same connection by WAIT n, and
// fails unless n replicas acknowledged it within the call's deadline. A
// failed WAIT does not undo the write: the decision fails closed (the
// documented 503) with the unit consumed, so an instance can be told no for
// a send that was counted, never yes for one a promoted replica forgot.
// The outbox acknowledgement (a MULTI/EXEC) is not waited for: losing one
// redelivers an event, which the outbox allows anyway.
type waitClient struct {
	redis.UniversalClient
	n int
}

// waited runs cmd then WAIT on one connection to the master of key.
func (w *waitClient) waited(ctx context.Context, key string, cmd redis.Cmder, queue func(redis.Pipeliner)) {
	var node redis.Cmdable = w.UniversalClient
	cc, cluster := w.UniversalClient.(*redis.ClusterClient)
	if cluster {
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			cmd.SetErr(err)
			return
		}
		node = m
	}
	ms := int64(1)
	if d, ok := ctx.Deadline(); ok {
		ms = max(time.Until(d).Milliseconds()-20, 1) // room for the reply
	}
	var wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		queue(p)
		wait = p.Do(ctx, "wait", w.n, ms)
		return nil
	})
	switch {
	case cmd.Err() != nil:
	case err != nil:
		cmd.SetErr(fmt.Errorf("wait for %d replicas: %w", w.n, err))
	default:
		if got, err := wait.Int64(); err != nil || got < int64(w.n) {
			cmd.SetErr(fmt.Errorf("write reached %d of %d replicas within the timeout", got, w.n))
		}
	}
	if cluster && cmd.Err() != nil && !errors.Is(cmd.Err(), redis.Nil) {
		// A MOVED, or a master gone: the next call asks the cluster again.
		cc.ReloadState(ctx)
	}
}

func firstKey(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

func (w *waitClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	var cmd *redis.Cmd
	proxy := redis.NewCmd(ctx)
	w.waited(ctx, firstKey(keys), proxy, func(p redis.Pipeliner) { cmd = p.EvalSha(ctx, sha1, keys, args...) })
	return mergeCmd(ctx, cmd, proxy)
}

func (w *waitClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	var cmd *redis.Cmd
	proxy := redis.NewCmd(ctx)
	w.waited(ctx, firstKey(keys), proxy, func(p redis.Pipeliner) { cmd = p.Eval(ctx, script, keys, args...) })
	return mergeCmd(ctx, cmd, proxy)
}

// mergeCmd gives cmd the error of the pipeline around it (proxy) unless
// it failed itself; a nil cmd (never queued) becomes one with that error.
func mergeCmd(ctx context.Context, cmd *redis.Cmd, proxy redis.Cmder) *redis.Cmd {
	if cmd == nil {
		cmd = redis.NewCmd(ctx)
	}
	if cmd.Err() == nil && proxy.Err() != nil {
		cmd.SetErr(proxy.Err())
	}
	return cmd
}

func (w *waitClient) intWrite(ctx context.Context, key string, queue func(redis.Pipeliner) *redis.IntCmd) *redis.IntCmd {
	var cmd *redis.IntCmd
	proxy := redis.NewCmd(ctx)
	w.waited(ctx, key, proxy, func(p redis.Pipeliner) { cmd = queue(p) })
	if cmd == nil {
		cmd = redis.NewIntCmd(ctx)
	}
	if cmd.Err() == nil && proxy.Err() != nil {
		cmd.SetErr(proxy.Err())
	}
	return cmd
}

func (w *waitClient) HSet(ctx context.Context, key string, values ...any) *redis.IntCmd {
	return w.intWrite(ctx, key, func(p redis.Pipeliner) *redis.IntCmd { return p.HSet(ctx, key, values...) })
}

func (w *waitClient) HDel(ctx context.Context, key string, fields ...string) *redis.IntCmd {
	return w.intWrite(ctx, key, func(p redis.Pipeliner) *redis.IntCmd { return p.HDel(ctx, key, fields...) })
}

func (w *waitClient) SAdd(ctx context.Context, key string, members ...any) *redis.IntCmd {
	return w.intWrite(ctx, key, func(p redis.Pipeliner) *redis.IntCmd { return p.SAdd(ctx, key, members...) })
}

func (w *waitClient) SRem(ctx context.Context, key string, members ...any) *redis.IntCmd {
	return w.intWrite(ctx, key, func(p redis.Pipeliner) *redis.IntCmd { return p.SRem(ctx, key, members...) })
}

func (w *waitClient) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return w.intWrite(ctx, firstKey(keys), func(p redis.Pipeliner) *redis.IntCmd { return p.Del(ctx, keys...) })
}
