package main

import "syscall"

// childAttr has a child process killed when the test process dies, so that a
// test that times out leaves no server behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
