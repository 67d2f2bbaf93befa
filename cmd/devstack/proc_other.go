//go:build !unix

package main

import (
	"os"
	"syscall"
)

// sysProcAttr is nil: process groups are a Unix feature.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup kills p: without Unix signals there is no graceful stop.
func signalGroup(p *os.Process, _ syscall.Signal) error { return p.Kill() }
