// Command walcat looks inside a walpub log: dump, verify, stats, follow,
// and repair. Every command but repair, import-hop and dead-letters is
// read-only. Run "walcat help" for the commands and their flags; the logic
// lives in package tools/walcat/internal/walcat.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/walpub/walpub/tools/walcat/internal/walcat"
)

// signalGrace is how long a command may take to return after an interrupt
// before walcat ends by the signal.
const signalGrace = 2 * time.Second

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel()
		// A command stuck writing to an output nobody reads (a pipe to a
		// pager that stopped reading) never sees ctx end. So the signals
		// get their default effect back: a second one ends walcat at once,
		// and if the command has not returned within signalGrace, the
		// first one is sent again, with that effect.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		time.Sleep(signalGrace)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Signal(sig)
		}
	}()
	os.Exit(walcat.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
