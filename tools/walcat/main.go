// Command walcat looks inside a walpub log: dump, verify, stats, follow,
// and repair. Every command but repair is read-only. Run "walcat help" for
// the commands and their flags; the logic lives in package
// tools/walcat/internal/walcat.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/walpub/walpub/tools/walcat/internal/walcat"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := walcat.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
