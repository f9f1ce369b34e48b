package walpub

import (
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// readGate lets walpub cancel a read of an input that may wait forever (a
// pipe or a terminal that delivers nothing more), so that the reader
// ends and is joined (joinReader). A read first waits with poll(2) for
// the input and for a pipe of the gate's own; cancel closes that pipe's
// write end, which ends every wait at once and each one after. The input
// itself is left as it is: its O_NONBLOCK flag, shared with every process
// that has it open (the shell's terminal), is not touched, and nothing is
// read from it after the cancel.
type readGate struct {
	fds    [2]int // the gate's pipe: read end, write end
	cancel func() // closes the write end, once
}

// errCanceled ends a read that the gate cancelled.
var errCanceled = errors.New("walpub: read cancelled")

// newReadGate returns a gate, or nil if it cannot make its pipe (reads
// are then not cancellable).
func newReadGate() *readGate {
	g := &readGate{}
	if err := unix.Pipe2(g.fds[:], unix.O_CLOEXEC); err != nil {
		return nil
	}
	g.cancel = sync.OnceFunc(func() { unix.Close(g.fds[1]) })
	return g
}

// close releases the gate's pipe; no read may wait on it any more (the
// reader closes it once it has done reading).
func (g *readGate) close() {
	if g == nil {
		return
	}
	g.cancel()
	unix.Close(g.fds[0])
}

// wait waits until fd has something to read (or its end, or an error,
// which the read then returns), or the gate is cancelled (errCanceled).
func (g *readGate) wait(fd int) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(g.fds[0]), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		case fds[1].Revents != 0:
			// Checked first: input that came with the cancel stays in it.
			return errCanceled
		case fds[0].Revents != 0:
			return nil
		}
	}
}

// fileFd returns f's descriptor without changing its mode (File.Fd
// makes a non-blocking file blocking).
func fileFd(f *os.File) (int, bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if err := rc.Control(func(d uintptr) { fd = int(d) }); err != nil {
		return 0, false
	}
	return fd, true
}

// gatedReader reads f once the gate says it has something to read.
type gatedReader struct {
	f    *os.File
	fd   int
	gate *readGate
}

func (r gatedReader) Read(p []byte) (int, error) {
	if err := r.gate.wait(r.fd); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}

// gated returns f read through g, or f itself if g is nil or f's
// descriptor cannot be had.
func gated(f *os.File, g *readGate) io.Reader {
	if g == nil {
		return f
	}
	fd, ok := fileFd(f)
	if !ok {
		return f
	}
	return gatedReader{f: f, fd: fd, gate: g}
}
