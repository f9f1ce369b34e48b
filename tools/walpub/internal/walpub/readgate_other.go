//go:build !linux

package walpub

import (
	"io"
	"os"
)

// readGate cancels reads on Linux only (see readgate_linux.go); here a
// read that waits forever is left waiting (joinReader).
type readGate struct{ cancel func() }

func newReadGate() *readGate { return nil }

func (g *readGate) close() {}

func gated(f *os.File, g *readGate) io.Reader { return f }
