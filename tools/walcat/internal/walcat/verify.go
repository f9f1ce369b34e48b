package walcat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
)

var verifyCmd = &command{
	name:    "verify",
	summary: "check every checksum, header, sequence and the high-water mark",
	usage: `Usage: walcat verify [flags] DIR

Checks the log as Open would, without changing it: every segment header,
every frame's checksum, sequence numbers (no gap, no repeat), batches
(committed whole), the metadata (superblock and checkpoint), the durable
high-water mark, and that every compressed record decompresses. It needs
no key: an encrypted log's checksums cover the stored bytes. With
--key-file FILE, the log's key file (as for dump), it also authenticates
every encrypted record, which finds a record altered with its checksum
fixed up, or encrypted under another key. A torn tail (a write cut short
by a crash, beyond the high-water mark) is healthy: the next Open cuts
it; verify reports it.

Exit status: 0 healthy; 1 damaged, with the damaged file, the offset of
the damaged frame, the seq expected there and the reason; 2 usage error,
or DIR is not a directory or holds no log.

Examples:
  walcat verify publisher.journal
  walcat verify --json DIR
  walcat verify --key-file journal.key DIR   # an encrypted log, authenticated
  walcat verify DIR || walcat repair DIR
`,
}

func init() { verifyCmd.run = runVerify }

type jsonVerify struct {
	OK      bool         `json:"ok"`
	Dir     string       `json:"dir"`
	Damage  *jsonDamage  `json:"damage,omitempty"`
	Error   string       `json:"error,omitempty"`
	Summary *jsonSummary `json:"summary,omitempty"`
}

type jsonDamage struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Seq    uint64 `json:"seq"` // 0: unknown
	Reason string `json:"reason"`
}

type jsonSummary struct {
	Segments   int    `json:"segments"`
	Records    int    `json:"records"`
	Pending    int    `json:"pending"`
	Acked      int    `json:"acked"`
	NextSeq    uint64 `json:"next_seq"`
	TornBytes  int64  `json:"torn_bytes"`
	TornOffset int64  `json:"torn_offset"` // -1: none
	Encrypted  bool   `json:"encrypted"`
}

func runVerify(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags(verifyCmd)
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	keyFile := fs.String("key-file", "", "also authenticate the records of an encrypted log with the key in `FILE`: "+cliutil.KeyFileHelp)
	dir, code, ok := c.parse(verifyCmd, fs, args)
	if !ok {
		return code
	}
	key, ok := c.readKeyFlag("verify", *keyFile)
	if !ok || !c.checkDir("verify", dir) {
		return ExitUsage
	}
	encrypted, err := verifyWithKey(dir, key)
	if code, refused := c.keyRefused("verify", dir, *keyFile, encrypted, err); refused {
		return code
	}
	withKey := ""
	if key != nil {
		withKey = "--key-file FILE "
	}
	var in *wal.Info
	if err == nil {
		// The summary comes from a second look; on a live log it may
		// see a little more than the check did.
		if v, verr := wal.OpenView(dir); verr == nil {
			i := v.Info()
			in = &i
			v.Close()
		}
	}
	if *asJSON {
		return printVerifyJSON(c.stdout, dir, in, err)
	}
	return printVerifyText(c.stdout, dir, withKey, in, err)
}

// printVerifyText prints verify's result; withKey is the --key-file the
// repair it advises needs ("" for none).
func printVerifyText(w io.Writer, dir, withKey string, in *wal.Info, err error) int {
	var ce *wal.CorruptionError
	switch {
	case err == nil:
		fmt.Fprintf(w, "ok: %s is healthy", dir)
		if in != nil {
			fmt.Fprintf(w, ": %s, %s (%d pending, %d acknowledged), next seq %d",
				plural(int64(len(in.Segments)), "segment"), plural(int64(in.Records), "record"),
				in.Pending, in.Acked, in.NextSeq)
			fmt.Fprintln(w)
			if in.Encrypted {
				fmt.Fprintf(w, "note: encrypted: %s\n", encryptedText(*in))
			}
			switch {
			case in.TornBytes > 0 && in.TornOffset >= 0:
				fmt.Fprintf(w, "note: a torn tail of %d bytes at offset %d of %s (a write cut short); the next Open cuts it\n",
					in.TornBytes, in.TornOffset, filepath.Base(in.Segments[len(in.Segments)-1].Path))
			case in.TornBytes > 0:
				// No offset: the bytes are in segment files after the
				// last one (there may be none), whose header a power cut
				// took.
				fmt.Fprintf(w, "note: a torn tail of %d bytes in segment files whose header a power cut took (a write cut short); the next Open removes them\n",
					in.TornBytes)
			}
		} else {
			fmt.Fprintln(w)
		}
		return ExitOK
	case errors.As(err, &ce):
		fmt.Fprintf(w, "damaged: %s\n", dir)
		fmt.Fprintf(w, "  file:   %s\n", ce.Path)
		fmt.Fprintf(w, "  offset: %d\n", ce.Offset)
		if ce.Seq != 0 {
			fmt.Fprintf(w, "  seq:    %d\n", ce.Seq)
		} else {
			fmt.Fprintf(w, "  seq:    unknown\n")
		}
		fmt.Fprintf(w, "  reason: %s\n", ce.Reason)
		switch ce.Fix() {
		case wal.FixByHand:
			fmt.Fprintln(w, byHandAdvice(ce))
		case wal.FixCheckpoint:
			fmt.Fprintf(w, "Run \"walcat repair %s%s\" to write a new checkpoint from the ack frames still on disk.\n", withKey, dir)
		default:
			fmt.Fprintf(w, "Run \"walcat repair %s%s\" to cut the log at the damage; the bytes cut off are kept in a side file.\n", withKey, dir)
		}
		return ExitDamaged
	default:
		fmt.Fprintf(w, "error: %s cannot be verified: %v\n", dir, err)
		return ExitDamaged
	}
}

func printVerifyJSON(w io.Writer, dir string, in *wal.Info, err error) int {
	j := jsonVerify{OK: err == nil, Dir: dir}
	code := ExitOK
	var ce *wal.CorruptionError
	switch {
	case err == nil:
		if in != nil {
			j.Summary = &jsonSummary{Segments: len(in.Segments), Records: in.Records, Pending: in.Pending,
				Acked: in.Acked, NextSeq: in.NextSeq, TornBytes: in.TornBytes, TornOffset: in.TornOffset, Encrypted: in.Encrypted}
		}
	case errors.As(err, &ce):
		j.Damage = &jsonDamage{Path: ce.Path, Offset: ce.Offset, Seq: ce.Seq, Reason: ce.Reason}
		code = ExitDamaged
	default:
		j.Error = err.Error()
		code = ExitDamaged
	}
	b, _ := json.Marshal(j)
	fmt.Fprintf(w, "%s\n", b)
	return code
}
