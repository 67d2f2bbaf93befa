//go:build unix

package main

import (
	"os"
	"syscall"
)

// sysProcAttr puts a child in a process group of its own, so that a Ctrl-C
// at the terminal reaches only devstack, which then stops the children.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to p's process group: p and anything it started.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}
