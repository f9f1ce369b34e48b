package walpub

import (
	"bytes"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// teePeek bounds what teeReader looks at ahead of a read.
const teePeek = 16 << 10

// lineBounded returns a reader of in whose reads never take a byte past
// the end of a line ('\n'), and its release. A pipe (or FIFO) is read up
// to the end of the line it holds: tee(2) copies what the pipe holds,
// without consuming it, into a pipe of walpub's own, where the line's end
// is looked for. Any other input is read a byte at a time. A file's reads
// wait through gate, if not nil (readGate).
func lineBounded(in io.Reader, gate *readGate) (io.Reader, func()) {
	f, ok := in.(*os.File)
	if !ok {
		return byteReader{in}, func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return byteReader{gated(f, gate)}, func() {}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return byteReader{gated(f, gate)}, func() {}
	}
	t := &teeReader{f: f, fd: int(f.Fd()), pr: pr, pw: int(pw.Fd()), gate: gate}
	return t, func() {
		pr.Close()
		pw.Close()
	}
}

// teeReader reads a pipe f up to the end of the line it holds.
type teeReader struct {
	f  *os.File
	fd int
	pr *os.File // the copies' pipe: its read end
	pw int      // and its write end
	// bytewise: tee is refused (the pipe is non-blocking, say): a byte
	// at a time.
	bytewise bool
	gate     *readGate // nil: reads are not cancellable
}

func (t *teeReader) Read(p []byte) (int, error) {
	if t.gate != nil {
		// tee waits, like a read, until the pipe holds something.
		if err := t.gate.wait(t.fd); err != nil {
			return 0, err
		}
	}
	if t.bytewise {
		return byteReader{t.f}.Read(p)
	}
	p = p[:min(len(p), teePeek)]
	var n int64
	var err error
	for {
		// Waits until the pipe holds something, or its writers are gone.
		n, err = unix.Tee(t.fd, t.pw, len(p), 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		t.bytewise = true
		return byteReader{t.f}.Read(p)
	}
	if n == 0 {
		return t.f.Read(p) // the end of the input
	}
	if _, err := io.ReadFull(t.pr, p[:n]); err != nil {
		return 0, err
	}
	if i := bytes.IndexByte(p[:n], '\n'); i >= 0 {
		n = int64(i) + 1
	}
	// The pipe holds these n bytes: a read takes them.
	return io.ReadFull(t.f, p[:n])
}
