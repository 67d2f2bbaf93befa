package main

import (
	"context"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// openRedis opens the Redis store: shared by replicas, every call bounded
// by store.redis.timeout. The password comes from the environment only.
func openRedis(ctx context.Context, cfg *config.Config, cal limiter.Calendar, getenv func(string) string) (stateStore, error) {
	r := cfg.Store.Redis
	return store.NewRedis(ctx, store.RedisOptions{
		Addr:     r.Addr,
		Username: r.Username,
		Password: getenv(r.PasswordEnv),
		DB:       r.DB,
		Prefix:   r.Prefix,
		Timeout:  r.Timeout,
		Calendar: cal,
	})
}
