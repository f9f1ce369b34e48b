//go:build !linux

package wal

func threadCPU() int64 { return 0 }
