package main

import "syscall"

// childAttr makes the kernel send SIGTERM to a process of the system when
// purista dev dies without stopping it (kill -9, a crash), so none outlives
// it holding ports.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} }
