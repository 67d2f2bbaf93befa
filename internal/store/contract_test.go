package store_test

import (
	"testing"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/storetest"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store { return store.NewMemory(limiter.Calendar{}) },
	})
}
