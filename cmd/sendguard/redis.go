package main

import (
	"context"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// openRedis opens the Redis store: one server, a Redis Cluster or a master
// found through Sentinels, shared by replicas, every call bounded by
// store.redis.timeout. Passwords come from the environment only.
func openRedis(ctx context.Context, cfg *config.Config, cal limiter.Calendar, getenv func(string) string) (stateStore, error) {
	r := cfg.Store.Redis
	o := store.RedisOptions{
		Addr:         r.Addr,
		Username:     r.Username,
		Password:     getenv(r.PasswordEnv),
		DB:           r.DB,
		Prefix:       r.Prefix,
		Timeout:      r.Timeout,
		Calendar:     cal,
		Addrs:        r.Addrs,
		WaitReplicas: r.WaitReplicas,
	}
	if s := r.Sentinel; s.MasterName != "" {
		o.SentinelMaster, o.SentinelAddrs, o.SentinelUsername = s.MasterName, s.Addrs, s.Username
		if s.PasswordEnv != "" {
			o.SentinelPassword = getenv(s.PasswordEnv)
		}
	}
	if r.TLS.On() {
		tc, err := store.RedisTLS(r.TLS.CAFile, r.TLS.ServerName, r.TLS.InsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		o.TLS = tc
	}
	return store.NewRedis(ctx, o)
}
