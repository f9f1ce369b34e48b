package walpub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/tools/internal/cliutil"
)

// progressEvery is how often progress is shown.
const progressEvery = time.Second

// startProgress shows sent (journaled by this run), confirmed, pending
// and the confirmation rate on stderr every second: on one line rewritten
// in place on a terminal, a line each otherwise. The returned function
// stops it and waits for it.
func (r *run) startProgress(p *kafka.Producer) func() {
	if !r.cfg.progress {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		lastConf, lastAt := int64(0), r.start
		for {
			select {
			case <-done:
				if r.env.StderrTerminal {
					fmt.Fprint(r.env.Stderr, "\r\033[K")
				}
				return
			case now := <-t.C:
				st := p.Stats()
				rate := float64(st.Delivered-lastConf) / now.Sub(lastAt).Seconds()
				lastConf, lastAt = st.Delivered, now
				line := fmt.Sprintf("sent %d  confirmed %d  pending %d  %.0f records/s  journal %s",
					r.written.Load(), st.Delivered, st.Queued+st.InFlight, rate, cliutil.IBytes(st.JournalBytes))
				if r.env.StderrTerminal {
					fmt.Fprintf(r.env.Stderr, "\r\033[K%s", line)
				} else {
					fmt.Fprintf(r.env.Stderr, "walpub: %s\n", line)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// finish prints the summary and returns the exit status.
func (r *run) finish(p *kafka.Producer, inputErr, closeErr error) int {
	st := p.Stats()
	left := st.Queued + st.InFlight
	elapsed := time.Since(r.start)
	journaled, confirmed := "", ""
	switch {
	case r.leftover == 0:
	case left == 0 && st.DeadLettered == 0:
		// Every record was confirmed, the earlier run's too.
		confirmed = fmt.Sprintf(" (%d of them left by an earlier run)", r.leftover)
	default:
		// Which of the confirmed records an earlier run left is not told.
		journaled = fmt.Sprintf(" (and %d an earlier run left)", r.leftover)
	}
	fmt.Fprintf(r.env.Stdout, "walpub: %d records journaled%s, %d confirmed by the broker%s, %d unconfirmed in %s; %.2fs, %.0f records/s\n",
		r.written.Load(), journaled, st.Delivered, confirmed, left, r.cfg.journal, elapsed.Seconds(), float64(st.Delivered)/elapsed.Seconds())

	code := ExitOK
	fail := func(format string, a ...any) {
		r.notef(format, a...)
		code = ExitError
	}
	if r.broker != nil {
		n, distinct, err := r.readBack()
		if err != nil {
			fail("reading back topic %q from the embedded broker: %v", r.cfg.topic, err)
		} else {
			dups := ""
			if d := n - distinct; d > 0 {
				dups = fmt.Sprintf(" (%d %s: a record sent again, as at least once allows; consumers drop them by _id)", d, plural(int64(d), "duplicate", "duplicates"))
			}
			fmt.Fprintf(r.env.Stdout, "walpub: read back from the embedded broker: topic %q holds %d records, %d distinct _id%s\n",
				r.cfg.topic, n, distinct, dups)
			if int64(distinct) < st.Delivered {
				fail("the topic holds fewer distinct records (%d) than the broker confirmed (%d)", distinct, st.Delivered)
			}
			if n > distinct && r.cfg.exactlyOnce {
				fail("--exactly-once, yet the topic, read read_committed, holds %d records more than distinct _id", n-distinct)
			}
		}
	}
	if inputErr != nil {
		fail("%v", inputErr)
		// The input stops at the error: the files after it are not read.
		if i := int(r.reading.Load()) + 1; i < len(r.cfg.files) {
			r.notef("not read: %s", strings.Join(r.cfg.files[i:], " "))
		}
	}
	r.hand.mu.Lock()
	lost := r.hand.notJournaled
	r.hand.mu.Unlock()
	if lost > 0 {
		unit := "lines"
		if r.cfg.whole {
			unit = "inputs"
		}
		fail("%d %s read from the input are not journaled (named above): send them again", lost, unit)
	}
	if closeErr != nil && !errors.Is(closeErr, context.Canceled) {
		fail("%v", closeErr)
	}
	if st.DeadLettered > 0 {
		fail("%d records were refused by the broker for good and moved to %s/%s (walcat dump %s/%s shows them and why)",
			st.DeadLettered, r.cfg.journal, kafka.DeadLetterDir, r.cfg.journal, kafka.DeadLetterDir)
	}
	switch {
	case left > 0:
		r.notef("%d records stay in %s; the next walpub run with this journal sends them first", left, r.cfg.journal)
		if code == ExitOK {
			code = ExitUnconfirmed
		}
	case code == ExitOK && r.isInterrupted():
		code = r.signalCode()
	}
	return code
}

// plural returns one if n is 1, else many.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
