//go:build !linux

package model

// release is a no-op off Linux (release_linux.go).
func release([]byte) {}
