// Package walcat implements the walcat command: dump, verify, stats,
// follow and repair a walpub log directory, and import a hop-client
// journal into one (import-hop), and requeue or drop a producer's dead
// letters (dead-letters). Main writes to the writers it
// is given and returns the exit status, so that tests run it directly.
//
// Every command but repair, import-hop and dead-letters is read-only: it opens the log with
// wal.OpenView, which takes no lock, opens every file read-only and
// changes no byte, so it works on a log another process has open.
//
// Exit status: 0 success (for verify: the log is healthy); 1 the log is
// damaged or could not be read; 2 a usage error.
package walcat

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
)

// Exit statuses.
const (
	ExitOK      = 0 // success; for verify, a healthy log
	ExitDamaged = 1 // the log is damaged, or an error occurred
	ExitUsage   = 2 // bad command line
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // synopsis, description and examples
	run     func(ctx context.Context, c *cli, args []string) int
}

var commands []*command

func init() {
	commands = []*command{dumpCmd, verifyCmd, statsCmd, followCmd, repairCmd, importHopCmd, deadLettersCmd}
}

// cli carries the output streams of one Main call.
type cli struct {
	stdout io.Writer
	stderr io.Writer
}

// errorf prints "walcat: ..." on stderr.
func (c *cli) errorf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "walcat: "+format+"\n", args...)
}

const mainUsage = `walcat looks inside a walpub log directory without changing it.

Usage:
  walcat COMMAND [flags] DIR
  walcat import-hop [flags] HOPJOURNAL DIR
  walcat dead-letters --requeue|--drop DIR

Commands:
%s
Run "walcat COMMAND --help" for a command's flags and examples.

Every command but repair, import-hop and dead-letters is read-only: it
takes no lock and changes no byte, so it may run on a log another process
has open.

Exit status: 0 success (verify: healthy), 1 damaged log or error, 2 usage error.
`

func printMainUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

// Main runs walcat with args (without the program name) and returns the
// exit status. ctx ends follow.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printMainUsage(stderr)
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if cmd := lookup(args[1]); cmd != nil {
				fmt.Fprint(stdout, cmd.usage)
				return ExitOK
			}
			c.errorf("unknown command %q", args[1])
			return ExitUsage
		}
		printMainUsage(stdout)
		return ExitOK
	}
	cmd := lookup(name)
	if cmd == nil {
		c.errorf("unknown command %q (want dump, verify, stats, follow, repair, import-hop or dead-letters; see walcat help)", name)
		return ExitUsage
	}
	return cmd.run(ctx, c, args[1:])
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// newFlags returns a flag set for cmd whose errors go to c.stderr.
func (c *cli) newFlags(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself
	return fs
}

// parse parses args with fs, allowing flags after the positional
// arguments ("walcat dump DIR --json"), and checks that exactly one
// positional argument, the directory, is left. On failure it returns the
// exit status to use: ExitOK after --help, ExitUsage otherwise.
func (c *cli) parse(cmd *command, fs *flag.FlagSet, args []string) (dir string, code int, ok bool) {
	pos, err := cliutil.ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.printUsage(c.stdout, cmd, fs)
		return "", ExitOK, false
	}
	if err != nil {
		c.errorf("%s: %v", cmd.name, err)
		fmt.Fprintf(c.stderr, "Run \"walcat %s --help\" for usage.\n", cmd.name)
		return "", ExitUsage, false
	}
	switch {
	case len(pos) == 0:
		c.errorf("%s: no log directory given", cmd.name)
	case len(pos) > 1:
		c.errorf("%s: one log directory expected, got %d arguments: %s", cmd.name, len(pos), strings.Join(pos, " "))
	default:
		return pos[0], ExitOK, true
	}
	fmt.Fprintf(c.stderr, "Run \"walcat %s --help\" for usage.\n", cmd.name)
	return "", ExitUsage, false
}

// printUsage prints cmd's description and flags, GNU style (--name).
func (c *cli) printUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprint(w, cmd.usage)
	fmt.Fprintf(w, "\nFlags:\n")
	cliutil.PrintFlags(w, fs, nil)
}

// checkDir reports a missing or unreadable directory, or one that holds
// no log, in plain words; it returns false after printing the error. A
// directory without a log (a wrong path, an emptied directory) must not
// pass for a healthy empty log, nor gain one.
func (c *cli) checkDir(cmd, dir string) bool {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		c.errorf("%s: %v", cmd, err)
		return false
	case !fi.IsDir():
		c.errorf("%s: %s is not a directory", cmd, dir)
		return false
	case !holdsLog(dir):
		c.errorf("%s: %s holds no log (no segment file, no superblock): give the directory of a walpub log or journal", cmd, dir)
		return false
	}
	return true
}

// reportOpenError explains an error from wal.OpenView or reading records
// and returns the exit status.
func (c *cli) reportOpenError(cmd, dir string, err error) int {
	var ce *wal.CorruptionError
	if errors.As(err, &ce) {
		c.errorf("%s: %s is damaged: %s at offset %d%s: %s", cmd, dir, ce.Path, ce.Offset, seqText(ce.Seq), ce.Reason)
		if ce.Fix() == wal.FixByHand {
			fmt.Fprintln(c.stderr, byHandAdvice(ce))
			return ExitDamaged
		}
		fix := "to cut the log at the damage"
		if ce.Fix() == wal.FixCheckpoint {
			fix = "to write a new checkpoint"
		}
		if errors.Is(err, wal.ErrAuth) {
			// Only the key tells this damage (verify has none): repair
			// needs it too.
			fmt.Fprintf(c.stderr, "Run \"walcat repair --key-file FILE %s\" with the log's key file %s.\n", dir, fix)
			return ExitDamaged
		}
		fmt.Fprintf(c.stderr, "Run \"walcat verify %s\" for details and \"walcat repair %s\" %s.\n", dir, dir, fix)
		return ExitDamaged
	}
	c.errorf("%s: %v", cmd, err)
	return ExitDamaged
}

// byHandAdvice says what a person does about damage of kind
// wal.FixByHand, which walcat repair does not change.
func byHandAdvice(ce *wal.CorruptionError) string {
	return fmt.Sprintf("Move %s out of the log's directory, or put the file itself there: walcat repair does not change it.", ce.Path)
}

func seqText(seq uint64) string {
	if seq == 0 {
		return ""
	}
	return fmt.Sprintf(" (seq %d)", seq)
}
