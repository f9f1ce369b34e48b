package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
)

// proxy is a TCP proxy on 127.0.0.1 in front of one broker. It can cut
// every connection, and swallow what the broker sends (its responses) while
// still passing on what the client sends, as a network that loses the way
// back does: requests take effect, their answers never come. A connection
// that lost a response can carry nothing after it (the stream is out of
// step), so the proxy closes it when the swallowing ends.
//
// A proxy is safe for concurrent use; Close stops its goroutines and waits
// for them.
type proxy struct {
	ln     net.Listener
	target string

	swallowing atomic.Bool
	accepted   atomic.Int64
	cuts       atomic.Int64
	swallowed  atomic.Int64 // bytes

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	poisoned       atomic.Bool // lost bytes from the broker
	once           sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.client.Close()
		c.server.Close()
	})
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[*proxyConn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pc.close()
			return
		}
		p.conns[pc] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.forward(pc)
		go p.backward(pc)
	}
}

// forward copies client -> broker (requests).
func (p *proxy) forward(pc *proxyConn) {
	defer p.wg.Done()
	_, _ = io.Copy(pc.server, pc.client)
	p.drop(pc)
}

// backward copies broker -> client (responses), swallowing them while
// p.swallowing is set.
func (p *proxy) backward(pc *proxyConn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.server.Read(buf)
		if n > 0 {
			if p.swallowing.Load() {
				pc.poisoned.Store(true)
				p.swallowed.Add(int64(n))
			} else if pc.poisoned.Load() {
				break
			} else if _, werr := pc.client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	p.drop(pc)
}

func (p *proxy) drop(pc *proxyConn) {
	pc.close()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// cut closes connections (all of them, or only the poisoned ones); the
// client sees them reset and must reconnect.
func (p *proxy) cut(onlyPoisoned bool) int {
	p.mu.Lock()
	var victims []*proxyConn
	for pc := range p.conns {
		if !onlyPoisoned || pc.poisoned.Load() {
			victims = append(victims, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range victims {
		pc.close()
	}
	p.cuts.Add(int64(len(victims)))
	return len(victims)
}

// startSwallow drops every response from now on, until endSwallow.
func (p *proxy) startSwallow() { p.swallowing.Store(true) }

// endSwallow passes responses on again, and closes the connections that
// lost one.
func (p *proxy) endSwallow() int {
	p.swallowing.Store(false)
	return p.cut(true)
}

func (p *proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.cut(false)
	p.wg.Wait()
}

// TestIntegrationProxyFaults puts a TCP proxy between the producer and the
// broker (every connection the client opens, whatever address the broker
// advertises, is dialled to the proxy) and, while records are written, cuts
// all connections and swallows the broker's responses, several times. The
// faults must have happened: every cut closed a connection, every swallow
// window swallowed responses, and the client reconnected through the proxy.
// After the faults stop, Flush must confirm everything, and kcat (connected
// to the broker directly) must find every record.
func TestIntegrationProxyFaults(t *testing.T) {
	proxyFaults(t, false)
}

// TestIntegrationExactlyOnceProxyFaults is TestIntegrationProxyFaults with
// kafka.WithExactlyOnce: read_committed, every record exactly once.
func TestIntegrationExactlyOnceProxyFaults(t *testing.T) {
	proxyFaults(t, true)
}

func proxyFaults(t *testing.T, exactlyOnce bool) {
	b := brokers(t)
	topic := topicName(t)
	createTopic(t, b, topic, 2)
	px := newProxy(t, strings.Split(b, ",")[0])
	logger, _ := newLogger(t)

	dialer := &net.Dialer{Timeout: 5 * time.Second}
	p := newProducer(t, "kafka://"+b+"/"+topic, modeOptions(exactlyOnce,
		kafka.WithJournal(t.TempDir()),
		kafka.WithLogger(logger),
		kafka.WithRetryBackoff(50*time.Millisecond, time.Second),
		kafka.WithClient(
			kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, px.Addr())
			}),
			// Shorter request timeouts than the defaults (10 s each), so
			// that a swallowed response is given up on within this test's
			// swallow window rather than after 20 s.
			kgo.ProduceRequestTimeout(2*time.Second),
			kgo.RequestTimeoutOverhead(time.Second),
		),
	)...)
	ctx := context.Background()
	stopWriter := startWriter(t, p, "k", 2*time.Millisecond)

	// pause lets records flow between faults: at least 700 ms, and until
	// the producer confirms records again (with exactly once, after a
	// fault it fences and reads back before it sends), so that every
	// fault hits a producer at work.
	// A producer that confirms nothing for 30 s after a fault fails the
	// test here: the next fault would not hit a producer at work.
	pause := func() {
		t.Helper()
		before := p.Stats().Delivered
		time.Sleep(700 * time.Millisecond)
		deadline := time.Now().Add(30 * time.Second)
		for p.Stats().Delivered == before {
			if time.Now().After(deadline) {
				t.Fatalf("no record confirmed for 30 s after the last fault: %+v", p.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	pause()
	if px.accepted.Load() == 0 {
		t.Fatal("no connection went through the proxy: the client bypasses it")
	}
	// cut closes every connection; the writer is busy, so there is at
	// least one.
	cut := func(what string) {
		t.Helper()
		n := px.cut(false)
		t.Logf("%s: closed %d connections", what, n)
		if n == 0 {
			t.Errorf("%s closed no connection", what)
		}
	}
	// swallow drops the broker's responses for d, then lets them through
	// again (closing the connections that lost one); during, if not nil,
	// runs in the middle of it. Responses must have been lost.
	swallow := func(what string, d time.Duration, during func()) {
		t.Helper()
		before := px.swallowed.Load()
		px.startSwallow()
		if during != nil {
			time.Sleep(d / 3)
			during()
			time.Sleep(d - d/3)
		} else {
			time.Sleep(d)
		}
		t.Logf("%s: closed %d connections", what, px.endSwallow())
		if px.swallowed.Load() == before {
			t.Errorf("%s swallowed no response", what)
		}
	}
	for i := range 3 {
		cut(fmt.Sprintf("cut %d", i))
		pause()
	}
	// Responses lost, connections then reset by the proxy.
	swallow("swallow 1.5s", 1500*time.Millisecond, nil)
	pause()
	// Lost for longer than the client's request timeout: the client gives
	// up on the connection itself and reconnects (into the same black hole).
	swallow("swallow 5s", 5*time.Second, nil)
	pause()
	// Both at once: swallow, and cut everything in the middle of it.
	swallow("swallow 1.5s, cut while swallowing", 1500*time.Millisecond, func() { cut("cut while swallowing") })
	pause()
	keys := stopWriter()
	accepted := px.accepted.Load()
	t.Logf("proxy: %d connections accepted, %d cut, %d response bytes swallowed",
		accepted, px.cuts.Load(), px.swallowed.Load())
	// Each of the four cuts closed every connection while records were
	// being written: the client must have dialled the proxy again after
	// each.
	if accepted < 5 {
		t.Errorf("%d connections through the proxy: the client did not reconnect after every cut", accepted)
	}

	drain(t, ctx, p, " after the network faults")
	verify(t, b, topic, keys, verifyOptions{exactlyOnce: exactlyOnce})
}
