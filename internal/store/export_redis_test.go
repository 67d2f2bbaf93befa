package store

import "github.com/redis/go-redis/v9"

// AddHook adds h to the store's Redis client, for tests that watch the
// commands a store sends.
func (r *Redis) AddHook(h redis.Hook) { r.c.AddHook(h) }
