package walcat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/index"
)

var repairCmd = &command{
	name:    "repair",
	summary: "cut a damaged log at its first damage, keeping the cut bytes aside",
	usage: `Usage: walcat repair [flags] DIR

Runs wal.Repair: cuts the log at its first damaged frame so that it opens
again, and says what was cut and where the cut bytes went. Nothing is
deleted: the rest of the damaged segment, every later segment, and
metadata that is damaged or names what was cut (superblock, checkpoint)
move into a side file "repair-<time>.cut" in DIR (a sequence of
pieces, each a line "walpub-repair <file> <offset> <length>" followed by
those bytes). Records after the damage are no longer in the log; the
side file keeps their bytes. --requeue then appends again, under new
seqs, every record the side file holds that still reads whole and that it
does not record as acknowledged, so that a damaged record costs that
record alone (for a robust producer's journal: the next producer sends
them, with their topic and _id), and renames the side file
"<name>.requeued"; on a healthy log it requeues the side files earlier
repairs left. A crash before the rename requeues them again the next
time: duplicates, never a loss. Acknowledgements recorded only in moved
metadata are lost, so some acknowledged records may be pending again
(they are sent again: at least once, never a loss). A checkpoint that is
missing after compaction reclaimed segments is written anew from the ack
frames still on disk, keeping every segment.

Damage that only the key can tell, an encrypted record that does not
authenticate (altered, or encrypted under another key), is found and cut
with --key-file FILE, the log's key file (as for dump); without it,
repair checks an encrypted log's records by their checksums alone. A
key file with another key is refused before anything changes.

repair takes the log's lock: stop the process using the log first. Only
repair, import-hop and dead-letters change a log. A healthy log is left
alone, but for the side files --requeue appends.

Exit status: 0 healthy or repaired; 1 damage remains (always with
--dry-run) or the repair failed; 2 usage error.

Examples:
  walcat repair --dry-run publisher.journal   # what would be cut
  walcat repair publisher.journal
  walcat repair --requeue publisher.journal   # and keep the records after the damage
  walcat repair --key-file journal.key publisher.journal  # an encrypted log
`,
}

func init() { repairCmd.run = runRepair }

func runRepair(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags(repairCmd)
	dryRun := fs.Bool("dry-run", false, "only say what would be cut")
	keyFile := fs.String("key-file", "", "check the records of an encrypted log with the key in `FILE`: "+cliutil.KeyFileHelp)
	requeue := fs.Bool("requeue", false, "then append again, as new records, the records that the cut (or an earlier repair) moved to a side file and that still read whole")
	dir, code, ok := c.parse(repairCmd, fs, args)
	if !ok {
		return code
	}
	key, ok := c.readKeyFlag("repair", *keyFile)
	if !ok || !c.checkDir("repair", dir) {
		return ExitUsage
	}
	w := c.stdout
	encrypted, err := verifyWithKey(dir, key)
	if key != nil && err != nil && !errors.Is(err, wal.ErrKey) {
		// Damage the reading stopped at, perhaps before it could check
		// the key: wal.RepairWithKey would check it only once it mended
		// damage that keeps the log from loading.
		if enc, kerr := keyOfDamaged(dir, key); kerr != nil {
			encrypted, err = enc, kerr
		}
	}
	if code, refused := c.keyRefused("repair", dir, *keyFile, encrypted, err); refused {
		return code
	}
	var ce *wal.CorruptionError
	switch {
	case err == nil:
		fmt.Fprintf(w, "nothing to repair: %s is healthy\n", dir)
		if encrypted && key == nil {
			fmt.Fprintf(w, "its encrypted records were checked by their checksums only: \"walcat repair --key-file FILE %s\" also authenticates them\n", dir)
		}
		if *requeue && !*dryRun {
			return c.requeueCut(dir, key)
		}
		if sides, _ := filepath.Glob(filepath.Join(dir, "repair-*.cut")); len(sides) > 0 {
			fmt.Fprintf(w, "earlier repairs left %s of records cut off: \"walcat repair --requeue %s\" appends again those that still read whole\n",
				plural(int64(len(sides)), "side file"), dir)
		}
		return ExitOK
	case !errors.As(err, &ce):
		c.errorf("repair: %s cannot be verified: %v", dir, err)
		return ExitDamaged
	}
	fmt.Fprintf(w, "damage: %s at offset %d%s: %s\n", ce.Path, ce.Offset, seqText(ce.Seq), ce.Reason)
	if ce.Fix() == wal.FixByHand {
		fmt.Fprintln(w, byHandAdvice(ce))
		return ExitDamaged
	}
	lost := ce.Fix() == wal.FixCheckpoint
	if *dryRun {
		if lost {
			fmt.Fprintf(w, "would write a new checkpoint from the ack frames still on disk, keeping every segment\n")
		} else {
			fmt.Fprintf(w, "would cut the log there, moving the bytes cut off (and any later segment or damaged metadata) to a side file in %s\n", dir)
			if *requeue {
				fmt.Fprintf(w, "would then append again the records cut off that still read whole and are not acknowledged\n")
			}
		}
		return ExitDamaged
	}
	var rep wal.RepairReport
	if key != nil {
		rep, err = wal.RepairWithKey(dir, key)
	} else {
		rep, err = wal.Repair(dir)
	}
	if errors.Is(err, wal.ErrLocked) {
		c.errorf("repair: another process has %s open; stop it, then run repair again", dir)
		return ExitDamaged
	}
	switch {
	case lost && rep.Path == ce.Path && rep.Moved == 0:
		fmt.Fprintf(w, "wrote a new checkpoint %s; records whose acknowledgement only the lost one held are pending again\n", rep.Path)
	case rep.Moved > 0 || rep.Path != "":
		fmt.Fprintf(w, "cut %s at offset %d\n", rep.Path, rep.Offset)
	}
	if rep.SideFile != "" {
		fmt.Fprintf(w, "moved %d bytes to %s\n", rep.Moved, rep.SideFile)
	}
	if err != nil {
		c.errorf("repair: %v", err)
		return ExitDamaged
	}
	if _, verr := verifyWithKey(dir, key); verr != nil {
		c.errorf("repair: %s is still damaged: %v", dir, verr)
		return ExitDamaged
	}
	v, err := wal.OpenView(dir)
	if err != nil {
		return c.reportOpenError("repair", dir, err)
	}
	in := v.Info()
	v.Close()
	fmt.Fprintf(w, "repaired: %s is healthy: %s (%d pending), next seq %d\n", dir,
		plural(int64(in.Records), "record"), in.Pending, in.NextSeq)
	if *requeue {
		return c.requeueCut(dir, key)
	}
	if rep.SideFile != "" && !lost {
		fmt.Fprintf(w, "the records cut off are no longer in the log: \"walcat repair --requeue %s\" appends again those that still read whole\n", dir)
	}
	return ExitOK
}

// requeueCut runs wal.RequeueCut on the log in dir (encrypted with key,
// if not nil) and says what it did.
func (c *cli) requeueCut(dir string, key []byte) int {
	var opts []wal.Option
	if key != nil {
		opts = append(opts, wal.WithEncryption(key))
	}
	rep, err := wal.RequeueCut(dir, opts...)
	w := c.stdout
	for _, side := range rep.SideFiles {
		fmt.Fprintf(w, "requeued the records of %s (renamed %s.requeued)\n", side, filepath.Base(side))
	}
	if rep.Requeued > 0 || len(rep.SideFiles) > 0 {
		fmt.Fprintf(w, "requeued %s: appended to the log again, under new seqs\n", plural(int64(rep.Requeued), "record"))
	}
	if rep.Acked > 0 {
		fmt.Fprintf(w, "left out %s that the side file records as acknowledged\n", plural(int64(rep.Acked), "record"))
	}
	const shown = 10
	for i, d := range rep.Damage {
		if i == shown {
			fmt.Fprintf(w, "left out, unreadable: %d more stretches\n", len(rep.Damage)-shown)
			break
		}
		fmt.Fprintf(w, "left out, unreadable: %v\n", d)
	}
	switch {
	case errors.Is(err, wal.ErrLocked):
		c.errorf("repair: another process has %s open; stop it, then run repair --requeue again", dir)
		return ExitDamaged
	case errors.Is(err, wal.ErrKey):
		c.errorf("repair: %v: give the log's key with --key-file FILE", err)
		return ExitDamaged
	case err != nil:
		c.errorf("repair: requeue: %v", err)
		return ExitDamaged
	case len(rep.SideFiles) == 0:
		fmt.Fprintf(w, "no side file of a repair is left to requeue in %s\n", dir)
	}
	return ExitOK
}

// readKeyFlag reads the key in keyFile, the --key-file of command cmd
// ("" for none: a nil key); it reports a file it cannot read as a usage
// error.
func (c *cli) readKeyFlag(cmd, keyFile string) ([]byte, bool) {
	if keyFile == "" {
		return nil, true
	}
	key, err := cliutil.ReadKeyFile(keyFile)
	if err != nil {
		c.errorf("%s: --key-file: %v", cmd, err)
		return nil, false
	}
	return key, true
}

// keyRefused reports, for command cmd, an ErrKey from verifyWithKey:
// a key given for a log that is not encrypted (a usage error), or a key
// that is not the log's. It returns the exit status and whether err was
// one of them.
func (c *cli) keyRefused(cmd, dir, keyFile string, encrypted bool, err error) (int, bool) {
	switch {
	case !errors.Is(err, wal.ErrKey):
		return 0, false
	case !encrypted:
		c.errorf("%s: %s is not encrypted: give no --key-file", cmd, dir)
		return ExitUsage, true
	default:
		c.errorf("%s: the key in %s is not the key of %s: %v", cmd, keyFile, dir, err)
		return ExitDamaged, true
	}
}

// keyOfDamaged checks key against the damaged log in dir before any
// repair, as far as the log tells without loading: the encryption file,
// where it is intact, says whether key is the log's (wal.SalvageWithKey
// checks it first); a log with neither that file nor an encrypted record
// is not encrypted, and any key is refused for it (with ErrKey, as
// View.SetKey refuses it). It also reports whether the log is encrypted.
func keyOfDamaged(dir string, key []byte) (encrypted bool, err error) {
	for _, err := range wal.SalvageWithKey(dir, key) {
		if errors.Is(err, wal.ErrKey) {
			return true, err
		}
		break
	}
	if _, err := os.Stat(filepath.Join(dir, index.EncryptionName)); err == nil {
		return true, nil
	}
	for r, err := range wal.Salvage(dir) {
		if err == nil && r.Encrypted {
			return true, nil
		}
	}
	return false, fmt.Errorf("%w: %s is not encrypted", wal.ErrKey, dir)
}

// verifyWithKey is wal.Verify, with the log's key (nil: none) checking
// that every encrypted record authenticates. It also reports whether the
// log is encrypted.
func verifyWithKey(dir string, key []byte) (encrypted bool, err error) {
	v, err := wal.OpenView(dir)
	if err != nil {
		return false, err
	}
	defer v.Close()
	encrypted = v.Info().Encrypted
	if key != nil {
		if err := v.SetKey(key); err != nil {
			return encrypted, err
		}
	}
	for _, err := range v.Records(0, 0) {
		if err != nil {
			return encrypted, err
		}
	}
	return encrypted, nil
}
