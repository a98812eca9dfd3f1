//go:build !linux

package main

import "syscall"

// childAttr: only Linux can tie a child's life to the test process; elsewhere
// t.Cleanup kills it.
func childAttr() *syscall.SysProcAttr { return nil }
