package walcat

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"github.com/walpub/walpub/wal"
)

var dumpCmd = &command{
	name:    "dump",
	summary: "print the records of a log",
	usage: `Usage: walcat dump [flags] DIR

Prints every record on disk, acknowledged or not, in ascending seq: its
seq, state (pending or acked), segment file and offset, payload size and
stored size, flags (zstd: stored compressed; encrypted: stored encrypted;
batch: written by AppendBatch) and a payload preview. Records of the
robust producer's journal (adapter/kafka) are decoded: topic, partition,
timestamp, key, headers (the 16-byte _id as a UUID), value, and for
dead-letter entries the reason; byte fields are quoted (Go syntax), and
so is a topic that is not made of the characters of a legal Kafka topic
name. --json prints one JSON object per line instead, byte fields as
strings when they are valid UTF-8 and as *_base64 fields otherwise.

An encrypted log (wal.WithEncryption, walpub --journal-key-file) is read
with --key-file FILE, the same key file: 64 hexadecimal characters, mode
0600 or stricter. Without it dump stops at the first encrypted record;
verify and stats need no key.

The log is read without a lock and no byte of it changes. A damaged log is
reported as verify would report it, with exit status 1; --salvage then
prints every record still readable: each segment file is read frame by
frame, damage is reported on stderr and skipped, and the exit status is 1
if there was any. Salvaged records come in the order they are stored,
with no check across frames and files.

Examples:
  walcat dump publisher.journal
  walcat dump --pending --json publisher.journal | jq .kafka.value
  walcat dump --from 1000 --to 1010 DIR
  walcat dump --raw DIR > payloads.txt          # one payload (Kafka value) per line
  walcat dump --raw --delim '' --format raw DIR # the stored bytes, nothing added
  walcat dump publisher.journal/dead-letter     # records the broker refused
  walcat dump --salvage --raw DIR > left.txt    # what a damaged log still holds
  walcat dump --key-file journal.key DIR        # an encrypted log
`,
}

func init() { dumpCmd.run = runDump }

func runDump(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags(dumpCmd)
	var po printOpts
	po.register(fs)
	pending := fs.Bool("pending", false, "only unacknowledged records")
	from := fs.Uint64("from", 0, "first `seq` to print")
	to := fs.Uint64("to", 0, "last `seq` to print (0: no limit)")
	salvage := fs.Bool("salvage", false, "read a damaged log: print every record still readable, report and skip the damage")
	dir, code, ok := c.parse(dumpCmd, fs, args)
	if !ok {
		return code
	}
	w := bufio.NewWriterSize(c.stdout, 64<<10)
	p, err := po.printer(w)
	if err != nil {
		c.errorf("dump: %v", err)
		return ExitUsage
	}
	if *to != 0 && *to < *from {
		c.errorf("dump: --to %d is below --from %d", *to, *from)
		return ExitUsage
	}
	if !c.checkDir("dump", dir) {
		return ExitUsage
	}
	records := wal.Salvage(dir) // lazy: it reads nothing until ranged over
	if po.key != nil {
		records = wal.SalvageWithKey(dir, po.key)
	}
	if !*salvage {
		v, err := po.openView(dir)
		if errors.Is(err, wal.ErrKey) {
			c.errorf("dump: %v", err)
			return ExitDamaged
		}
		if err != nil {
			code := c.reportOpenError("dump", dir, err)
			fmt.Fprintf(c.stderr, "\"walcat dump --salvage %s\" prints every record still readable.\n", dir)
			return code
		}
		defer v.Close()
		// Each segment's mapping goes once its records are printed: a
		// paused dump (the pipe to a pager full) must not keep the
		// segments the writer reclaims meanwhile on the disk.
		records = v.RecordsOnce(*from, *to)
	}
	damaged := 0
	for r, err := range records {
		var ce *wal.CorruptionError
		switch {
		case *salvage && errors.As(err, &ce):
			damaged++
			c.errorf("dump: damage: %s at offset %d%s: %s", ce.Path, ce.Offset, seqText(ce.Seq), ce.Reason)
			continue
		case err != nil:
			w.Flush()
			return c.reportOpenError("dump", dir, err)
		}
		if *pending && r.Acked || r.Seq < *from || *to != 0 && r.Seq > *to {
			continue
		}
		if err := p.print(r); err != nil {
			w.Flush()
			c.errorf("dump: %v", err)
			return ExitDamaged
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := w.Flush(); err != nil {
		c.errorf("dump: %v", err)
		return ExitDamaged
	}
	if ctx.Err() != nil {
		// A script must not take what was printed for the whole log.
		c.errorf("dump: interrupted: the records printed are not all of them")
		return ExitDamaged
	}
	if damaged > 0 {
		c.errorf("dump: skipped damage in %s; every record still readable was printed", plural(int64(damaged), "place"))
		return ExitDamaged
	}
	if p.badKafka > 0 {
		c.errorf("dump: %d records are not journal records of the robust producer (--format kafka)", p.badKafka)
		return ExitDamaged
	}
	return ExitOK
}

// plural returns "1 record" or "2 records".
func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
