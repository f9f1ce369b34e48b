// Package cliutil holds what walcat and walpub do alike: GNU-style flag
// help, byte counts in binary units, and reading a key file.
package cliutil

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// PrintFlags prints fs's flags as "--name value" with their help and
// default, GNU style. A flag whose default is its zero value, or for which
// hideDefault (may be nil) says so, is printed without a default.
func PrintFlags(w io.Writer, fs *flag.FlagSet, hideDefault func(*flag.Flag) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		switch {
		case f.DefValue == "" || f.DefValue == "false" || f.DefValue == "0" || hideDefault != nil && hideDefault(f):
		case fmt.Sprintf("%T", f.Value) == "*flag.stringValue":
			fmt.Fprintf(w, " (default \"%s\")", f.DefValue)
		default:
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// IBytes shows a byte count in binary units: "512 B", "1.5 MiB".
func IBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i-1])
}

// ParseInterspersed parses args with fs, allowing flags after positional
// arguments ("walcat dump DIR --json"), and returns the positional
// arguments in order; everything after "--" is positional. Its errors are
// fs.Parse's, flag.ErrHelp included.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// KeyFileHelp says what a key file holds, for --help texts.
const KeyFileHelp = "64 hexadecimal characters (a 32-byte AES-256 key; white space around them is ignored), mode 0600 or stricter: make one with `umask 077; openssl rand -hex 32 > FILE`"

// ReadKeyFile reads an encryption key (wal.WithEncryption) from path: 64
// hexadecimal characters, white space around them ignored. A file that its
// group or others may read or write (mode bits 0o077) is refused: the key
// is the journal's confidentiality.
func ReadKeyFile(path string) ([]byte, error) {
	// Non-blocking: opening a FIFO for reading would wait for a writer,
	// and the check that the key file is a regular file comes after.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %#o: its group or others may %s it; make it 0600 (chmod 600 %s)", path, perm, groupAccess(perm), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(b))
	key, err := hex.DecodeString(text)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("key file %s does not hold 64 hexadecimal characters (a 32-byte key)", path)
	}
	return key, nil
}

// groupAccess says what the group and other bits of perm allow: "read",
// "write", "read or write", "read, write or execute", ...
func groupAccess(perm os.FileMode) string {
	var can []string
	for _, b := range []struct {
		bits os.FileMode
		verb string
	}{{0o044, "read"}, {0o022, "write"}, {0o011, "execute"}} {
		if perm&b.bits != 0 {
			can = append(can, b.verb)
		}
	}
	if len(can) < 2 {
		return strings.Join(can, "")
	}
	return strings.Join(can[:len(can)-1], ", ") + " or " + can[len(can)-1]
}
