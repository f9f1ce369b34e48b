package walcat

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/walpub/walpub/adapter/kafka/hop"
	"github.com/walpub/walpub/tools/internal/binding"
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

A journal that a walpub run on its embedded broker used (a trial) is
unbound from that broker first, so that the imported messages can only go
to a real one; if the trial left records there unconfirmed, nothing is
imported.

A last record cut short (hop killed while writing it, before its write()
returned) is left out and reported. Any other damage stops the import with
the record's offset and nothing is appended; --salvage imports every
message still readable and reports each damaged record it skipped (a
damaged "sent" record makes its message pending: sent again, never lost).

An encrypted walpub journal (walpub --journal-key-file) is opened with
--key-file FILE, the same key file; a journal created by an import with
--key-file is encrypted with that key. An existing journal that is not
encrypted refuses --key-file (with it, it would be encrypted from then
on).

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
	src, dir := pos[0], pos[1]
	opts, ok := c.keyOptions("import-hop", dir, *keyFile)
	if !ok {
		return ExitUsage
	}
	if _, err := os.Stat(dir); err == nil {
		unlock, ok := c.unbindEmbedded(dir)
		if !ok {
			return ExitDamaged
		}
		defer unlock()
	}
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

// unbindEmbedded keeps the messages an import adds from walpub's embedded
// broker, which would confirm and forget them. A journal a walpub run on
// the embedded broker used (a trial) is bound to it (package binding);
// with nothing pending, the binding is removed before the import, so that
// the first run for a real broker binds the journal and an embedded run
// refuses the imported messages. With records of such a trial still
// pending, nothing is imported: walpub would refuse to send them and the
// imported messages alike to a real broker, and, told to let the embedded
// broker take the trial's, could take the imported ones with them. The
// binding stays locked until unlock, so that no walpub run rebinds the
// journal meanwhile.
func (c *cli) unbindEmbedded(dir string) (unlock func(), ok bool) {
	unlock, err := binding.Lock(dir)
	switch {
	case errors.Is(err, binding.ErrBusy):
		c.errorf("import-hop: %s is in use by another process (a walpub?): stop it first", dir)
		return nil, false
	case err != nil:
		c.errorf("import-hop: %v", err)
		return nil, false
	}
	had, err := binding.Read(dir)
	if err != nil {
		unlock()
		c.errorf("import-hop: reading the journal's binding: %v", err)
		return nil, false
	}
	if had != binding.Embedded {
		return unlock, true
	}
	v, err := wal.OpenView(dir)
	if err != nil {
		unlock()
		c.errorf("import-hop: %s: %v", dir, err)
		return nil, false
	}
	pending := v.Info().Pending
	v.Close()
	if pending > 0 {
		unlock()
		c.errorf("import-hop: %s holds %d records a walpub run on its embedded broker left (a trial); nothing imported", dir, pending)
		fmt.Fprintf(c.stderr, "Import into another journal, or first drop those records (walpub --journal %s </dev/null lets the embedded broker take them).\n", dir)
		return nil, false
	}
	if err := binding.Remove(dir); err != nil {
		unlock()
		c.errorf("import-hop: unbinding %s from the embedded broker: %v", dir, err)
		return nil, false
	}
	return unlock, true
}
