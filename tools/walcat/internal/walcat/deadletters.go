package walcat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/index"
)

var deadLettersCmd = &command{
	name:    "dead-letters",
	summary: "requeue or drop the dead letters of a producer's journal",
	usage: `Usage: walcat dead-letters --requeue|--drop DIR

Empties the dead-letter log of the robust producer's journal in DIR
(DIR/dead-letter: records no retry could deliver, such as records too large
for the broker; "walcat dump DIR/dead-letter" lists them with the reason).
The dead-letter log is bounded: at its bound, such records stay in the
journal, retried, until its records are requeued or dropped.

  --requeue  appends each dead letter back to the journal, with its topic,
             partition, key, value, headers (its _id included) and
             timestamp: the next producer on DIR sends them again (fix
             the cause first). Each is synced in the journal before it
             leaves the dead-letter log: a crash can duplicate, not lose.
  --drop     gives up on them for good; their space is reclaimed.

DIR must not be in use (it takes the journal's lock). An encrypted
journal needs its key: --key-file FILE, as for dump. A journal that is
not encrypted refuses one (with it, the journal would be encrypted from
then on).

Examples:
  walcat dump DIR/dead-letter
  walcat dead-letters --requeue publisher.journal
  walcat dead-letters --drop publisher.journal
`,
}

func init() { deadLettersCmd.run = runDeadLetters }

func runDeadLetters(_ context.Context, c *cli, args []string) int {
	fs := c.newFlags(deadLettersCmd)
	requeue := fs.Bool("requeue", false, "append the dead letters back to the journal, to be sent again")
	drop := fs.Bool("drop", false, "give up on the dead letters and reclaim their space")
	keyFile := fs.String("key-file", "", "the key of an encrypted journal, in `FILE`: "+cliutil.KeyFileHelp)
	dir, code, ok := c.parse(deadLettersCmd, fs, args)
	if !ok {
		return code
	}
	if *requeue == *drop {
		c.errorf("dead-letters: give one of --requeue and --drop")
		return ExitUsage
	}
	opts, ok := c.keyOptions("dead-letters", dir, *keyFile)
	if !ok {
		return ExitUsage
	}
	if !c.checkDir("dead-letters", dir) {
		return ExitUsage
	}
	var rep kafka.DeadLetterReport
	var err error
	if *requeue {
		rep, err = kafka.RequeueDeadLetters(dir, opts...)
	} else {
		rep, err = kafka.DropDeadLetters(dir, opts...)
	}
	if errors.Is(err, wal.ErrLocked) {
		c.errorf("dead-letters: %s is in use by another process (a producer?): stop it first", dir)
		return ExitDamaged
	}
	if errors.Is(err, wal.ErrKey) {
		c.keyError("dead-letters", dir, err)
		return ExitDamaged
	}
	if err != nil {
		return c.reportOpenError("dead-letters", dir, err)
	}
	switch {
	case *requeue:
		fmt.Fprintf(c.stdout, "%s: %d dead letters appended to the journal; the next producer on it sends them\n", dir, rep.Moved)
	default:
		fmt.Fprintf(c.stdout, "%s: %d dead letters dropped\n", dir, rep.Dropped)
	}
	if rep.Kept > 0 {
		fmt.Fprintf(c.stdout, "%s: %d dead letters kept: they name no topic (journal records that could not be decoded)\n", dir, rep.Kept)
	}
	return ExitOK
}

// holdsLog reports whether dir holds a log: a segment file, or a
// superblock (a log that lost its segments is damaged, for Open to
// report).
func holdsLog(dir string) bool {
	if names, err := segmentNames(dir); err == nil && len(names) > 0 {
		return true
	}
	_, err := os.Stat(filepath.Join(dir, index.SuperblockName))
	return err == nil
}

// keyOptions returns the wal options that open the log in dir, encrypted
// with the key in keyFile ("" for none), for a command that appends to it,
// or reports why the key file cannot be used. A log that exists and is
// not encrypted is refused a key: opened with one, it would be encrypted
// from then on, and every program using it would need the key. That is
// for walpub --journal-key-file (or wal.WithEncryption) to start, not a
// side effect of a maintenance command given a key by mistake. A log is
// encrypted when it has an encryption file or an encrypted record (as for
// wal.Open).
func (c *cli) keyOptions(cmd, dir, keyFile string) ([]wal.Option, bool) {
	key, ok := c.readKeyFlag(cmd, keyFile)
	if !ok || key == nil {
		return nil, ok
	}
	if _, err := os.Stat(filepath.Join(dir, index.EncryptionName)); err != nil && holdsLog(dir) && !encryptedRecords(dir) {
		c.errorf("%s: %s is not encrypted: with --key-file it would be from now on (walpub --journal-key-file starts that); give no --key-file", cmd, dir)
		return nil, false
	}
	return []wal.Option{wal.WithEncryption(key)}, true
}

// encryptedRecords reports whether the log in dir holds an encrypted
// record, for a log without its encryption file (Repair moves a damaged
// one aside): it is encrypted all the same, and wal.Open checks the key
// against that record. A log that cannot be read is not taken for
// encrypted: a key is refused for it as before (it does not open either
// way until repaired), rather than risk encrypting a plain log.
func encryptedRecords(dir string) bool {
	v, err := wal.OpenView(dir)
	if err != nil {
		return false
	}
	defer v.Close()
	return v.Info().Encrypted
}

// keyError reports a wal.ErrKey from opening the journal in dir.
func (c *cli) keyError(cmd, dir string, err error) {
	c.errorf("%s: %s is encrypted, and --key-file gave no key or another key: %v", cmd, dir, err)
}
