package wal

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine running: every
// goroutine a Log starts must be joined by Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
