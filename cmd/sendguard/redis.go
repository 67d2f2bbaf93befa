package main

import (
	"context"
	"errors"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/limiter"
)

func openRedis(ctx context.Context, cfg *config.Config, cal limiter.Calendar, getenv func(string) string) (stateStore, error) {
	return nil, errors.New("redis store: not built yet")
}
