package walcat

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/walpub/walpub/adapter/kafka/hop"
	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
)

var importHopCmd = &command{
	name:    "import-hop",
	summary: "append what a hop-client journal has not sent to a walpub journal",
	usage: `Usage: walcat import-hop [flags] HOPJOURNAL DIR

Reads HOPJOURNAL, the journal file of hop-client's RobustProducer
("publisher.journal" by default in hop), and appends every message that no
"sent" record there confirms to the walpub journal in DIR (created if
missing), in the order hop would send them, with its topic, key, value and
headers, its original "_id" included. Then

  walpub --journal DIR kafka://HOST:PORT/TOPIC </dev/null

(or any robust producer on DIR) sends them. hop and walpub both call their
journal "publisher.journal" (hop a file, walpub a directory): give DIR
another name.

Importing the same journal again appends nothing twice: the "_id" of every
message imported is listed in DIR/hop-imported. HOPJOURNAL is only read;
stop the hop process first. DIR must not be in use (import-hop takes its
lock). Version 1 records (older hop) name no topic: give it with --topic.

A last record cut short (hop killed while writing it, before its write()
returned) is left out and reported. Any other damage stops the import with
the record's offset and nothing is appended; --salvage imports every
message still readable and reports each damaged record it skipped (a
damaged "sent" record makes its message pending: sent again, never lost).

An encrypted walpub journal (walpub --journal-key-file) is opened with
--key-file FILE, the same key file; a journal created by an import with
--key-file is encrypted with that key.

Exit status: 0 imported; 1 damaged hop journal or error; 2 usage error.

Examples:
  walcat import-hop publisher.journal walpub.journal
  walcat import-hop --topic alerts old/publisher.journal walpub.journal
  walcat import-hop --salvage damaged.journal walpub.journal
  walcat import-hop --key-file journal.key publisher.journal walpub.journal
`,
}

func init() { importHopCmd.run = runImportHop }

func runImportHop(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags(importHopCmd)
	topic := fs.String("topic", "", "the `topic` of version 1 records, which name none (hop sent them to its URL's topic)")
	salvage := fs.Bool("salvage", false, "import what is readable from a damaged hop journal, skipping damaged records")
	keyFile := fs.String("key-file", "", "the key of an encrypted walpub journal (or of the one to create), in `FILE`: "+cliutil.KeyFileHelp)
	pos, err := cliutil.ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.printUsage(c.stdout, importHopCmd, fs)
		return ExitOK
	}
	if err == nil && len(pos) != 2 {
		err = fmt.Errorf("want HOPJOURNAL DIR, got %d arguments", len(pos))
	}
	if err != nil {
		c.errorf("import-hop: %v", err)
		fmt.Fprintln(c.stderr, `Run "walcat import-hop --help" for usage.`)
		return ExitUsage
	}
	opts, ok := c.keyOptions("import-hop", *keyFile)
	if !ok {
		return ExitUsage
	}
	src, dir := pos[0], pos[1]
	rep, err := hop.Import(src, dir, hop.ImportOptions{Topic: *topic, Salvage: *salvage, WAL: opts})
	j := rep.Journal
	if j != nil {
		for _, d := range j.Damage {
			c.errorf("import-hop: skipped: %v", d)
		}
		if j.TornBytes > 0 {
			c.errorf("import-hop: %s ends with %d bytes of a record cut short (a write that never returned): left out", src, j.TornBytes)
		}
	}
	var je *hop.JournalError
	switch {
	case errors.As(err, &je):
		c.errorf("import-hop: %v", err)
		fmt.Fprintf(c.stderr, "Nothing was imported. \"walcat import-hop --salvage %s %s\" imports every message still readable.\n", src, dir)
		return ExitDamaged
	case errors.Is(err, hop.ErrNoTopic):
		c.errorf("import-hop: %v (--topic)", err)
		return ExitUsage
	case errors.Is(err, wal.ErrLocked):
		c.errorf("import-hop: %s is in use by another process (a walpub?): stop it first", dir)
		return ExitDamaged
	case errors.Is(err, wal.ErrKey):
		c.keyError("import-hop", dir, err)
		return ExitDamaged
	case err != nil:
		c.errorf("import-hop: %v", err)
		return ExitDamaged
	}
	fmt.Fprintf(c.stdout, "%s: %d records (%d sent), %d messages not sent\n", src, j.Records, j.Sent, len(j.Pending))
	if rep.Imported > 0 {
		fmt.Fprintf(c.stdout, "%s: %d messages appended (seqs %d-%d)", dir, rep.Imported, rep.FirstSeq, rep.LastSeq)
	} else {
		fmt.Fprintf(c.stdout, "%s: nothing appended", dir)
	}
	if rep.Skipped > 0 {
		fmt.Fprintf(c.stdout, ", %d already imported", rep.Skipped)
	}
	fmt.Fprintln(c.stdout)
	if rep.Imported > 0 {
		fmt.Fprintf(c.stdout, "send them with: walpub --journal %s kafka://HOST:PORT/TOPIC </dev/null\n", dir)
	}
	return ExitOK
}
