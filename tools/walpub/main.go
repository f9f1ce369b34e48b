// Command walpub publishes lines or files to Kafka through the robust
// producer, journaling every record first; with no broker URL it starts an
// embedded broker. Run "walpub --help" for the flags; the logic lives in
// package tools/walpub/internal/walpub.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/walpub/walpub/tools/walpub/internal/walpub"
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	code := walpub.Main(context.Background(), os.Args[1:], walpub.Env{
		Stdin:          os.Stdin,
		Stdout:         os.Stdout,
		Stderr:         os.Stderr,
		Getenv:         os.Getenv,
		Signals:        sigs,
		StderrTerminal: walpub.IsTerminal(os.Stderr),
	})
	os.Exit(code)
}
