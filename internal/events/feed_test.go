package events

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// countingEncoder encodes an event as "topic endpoint data" and counts
// the calls per Seq.
type countingEncoder struct {
	mu    sync.Mutex
	calls map[uint64]int
}

func (c *countingEncoder) encode(ev Event) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[uint64]int{}
	}
	c.calls[ev.Seq]++
	return fmt.Appendf(nil, "%s %s %v", ev.Topic, ev.Endpoint, ev.Data)
}

// takeAll waits for the reader's Ready and takes until n messages came.
func takeAll(t *testing.T, r *Reader, n int) []*Message {
	t.Helper()
	var got []*Message
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case <-r.Ready:
			got = r.Take(got)
		case <-timeout:
			t.Fatalf("got %d of %d messages", len(got), n)
		}
	}
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	return got
}

func TestFeedEncodesEachEventOnce(t *testing.T) {
	var b Bus
	var enc countingEncoder
	f := NewFeed(&b, FeedConfig{Encode: enc.encode})
	const readers = 30
	all := make([]*Reader, readers)
	for i := range all {
		all[i] = f.Open(Filter{})
	}
	onlyA := f.Open(Filter{Endpoint: "a"})
	onlyOp := f.Open(Filter{Topics: []string{"op"}})
	aValues := f.Open(Filter{Endpoint: "a", Topics: []string{"values"}})
	nobody := f.Open(Filter{Endpoint: "z"})
	defer func() {
		for _, r := range append(all, onlyA, onlyOp, aValues, nobody) {
			r.Close()
		}
	}()
	type pub struct{ topic, ep string }
	pubs := []pub{{"values", "a"}, {"op", "b"}, {"values", "b"}, {"op", "a"}, {"values", "a"}, {"other", ""}}
	for i, p := range pubs {
		b.Publish(Event{Topic: p.topic, Endpoint: p.ep, Data: i})
	}
	var first []*Message
	for i, r := range all {
		got := takeAll(t, r, len(pubs))
		for j, m := range got {
			if want := fmt.Sprintf("%s %s %d", pubs[j].topic, pubs[j].ep, j); string(m.Bytes) != want || m.Seq != uint64(j+1) {
				t.Fatalf("reader %d message %d: %q seq %d, want %q seq %d", i, j, m.Bytes, m.Seq, want, j+1)
			}
			if i > 0 && m != first[j] {
				t.Fatalf("reader %d message %d is a copy, not the shared message", i, j)
			}
		}
		if i == 0 {
			first = got
		}
	}
	seqs := func(ms []*Message) (s []uint64) {
		for _, m := range ms {
			s = append(s, m.Seq)
		}
		return s
	}
	for name, c := range map[string]struct {
		r    *Reader
		want string
	}{
		"endpoint a":          {onlyA, "[1 4 5]"},
		"topic op":            {onlyOp, "[2 4]"},
		"endpoint a, values":  {aValues, "[1 5]"},
		"endpoint z (absent)": {nobody, "[]"},
	} {
		var got []*Message
		if c.want != "[]" {
			got = takeAll(t, c.r, strings.Count(c.want, " ")+1)
		}
		if s := fmt.Sprint(seqs(got)); s != c.want {
			t.Errorf("%s: got %s, want %s", name, s, c.want)
		}
	}
	enc.mu.Lock()
	defer enc.mu.Unlock()
	for seq := uint64(1); seq <= uint64(len(pubs)); seq++ {
		if enc.calls[seq] != 1 {
			t.Errorf("event %d encoded %d times", seq, enc.calls[seq])
		}
	}
}

func TestFeedSkipsEventsNoReaderSelects(t *testing.T) {
	var b Bus
	var enc countingEncoder
	f := NewFeed(&b, FeedConfig{Encode: enc.encode})
	r := f.Open(Filter{Endpoint: "a", Topics: []string{"op"}})
	defer r.Close()
	b.Publish(Event{Topic: "values", Endpoint: "a"})
	b.Publish(Event{Topic: "op", Endpoint: "b"})
	b.Publish(Event{Topic: "op", Endpoint: "a"})
	if got := takeAll(t, r, 1); got[0].Seq != 3 {
		t.Fatalf("got seq %d", got[0].Seq)
	}
	enc.mu.Lock()
	defer enc.mu.Unlock()
	if len(enc.calls) != 1 || enc.calls[3] != 1 {
		t.Fatalf("encoded %v, want only event 3", enc.calls)
	}
}

// TestFeedSlowReaderIsBounded: a reader that does not take holds at most
// Buffer messages and MaxBytes bytes, keeps the oldest, counts the rest
// as dropped, and delays no other reader.
func TestFeedSlowReaderIsBounded(t *testing.T) {
	for _, c := range []struct {
		name             string
		buffer, maxBytes int
		size             int // bytes of each message
		held             int
	}{
		{"by messages", 8, 1 << 20, 10, 8},
		{"by bytes", 100, 1000, 300, 3},
		{"one large message", 100, 1000, 5000, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b Bus
			f := NewFeed(&b, FeedConfig{Buffer: c.buffer, MaxBytes: c.maxBytes, Encode: func(ev Event) []byte {
				return fmt.Appendf(nil, "%0*d", c.size, ev.Seq)
			}})
			slow := f.Open(Filter{})
			defer slow.Close()
			fast := f.Open(Filter{})
			defer fast.Close()
			const n = 50
			for i := range n {
				b.Publish(Event{Topic: "t"})
				// The fast reader keeps up, so it drops nothing; when it
				// has an event, the slow reader has been offered it.
				if m := takeAll(t, fast, 1); m[0].Seq != uint64(i+1) {
					t.Fatalf("fast reader: seq %d", m[0].Seq)
				}
			}
			if fast.Dropped() != 0 {
				t.Fatalf("fast reader dropped %d", fast.Dropped())
			}
			if d := slow.Dropped(); d != uint64(n-c.held) {
				t.Fatalf("slow reader dropped %d, want %d", d, n-c.held)
			}
			if got := slow.bytes.Load(); got > int64(max(c.maxBytes, c.size)) {
				t.Fatalf("slow reader holds %d bytes", got)
			}
			held := slow.Take(nil)
			if len(held) != c.held {
				t.Fatalf("slow reader held %d messages, want %d", len(held), c.held)
			}
			for i, m := range held {
				if m.Seq != uint64(i+1) {
					t.Fatalf("held message %d has seq %d: not the oldest", i, m.Seq)
				}
			}
			if slow.bytes.Load() != 0 {
				t.Fatalf("after Take the reader counts %d bytes", slow.bytes.Load())
			}
			// Room again: the next event is held.
			b.Publish(Event{Topic: "t"})
			if m := takeAll(t, slow, 1); m[0].Seq != n+1 {
				t.Fatalf("after Take: seq %d", m[0].Seq)
			}
		})
	}
}

// TestFeedWakesOncePerInterval: the first event after a quiet interval
// wakes readers at once; events within the interval after it are handed
// over together when it ends.
func TestFeedWakesOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Bus
		var enc countingEncoder
		f := NewFeed(&b, FeedConfig{Encode: enc.encode, Interval: 100 * time.Millisecond})
		r := f.Open(Filter{})
		defer r.Close()
		ready := func() bool {
			synctest.Wait()
			select {
			case <-r.Ready:
				return true
			default:
				return false
			}
		}
		b.Publish(Event{Topic: "t"})
		if !ready() {
			t.Fatal("the first event did not wake the reader")
		}
		if got := r.Take(nil); len(got) != 1 {
			t.Fatalf("took %d", len(got))
		}
		time.Sleep(10 * time.Millisecond)
		b.Publish(Event{Topic: "t"})
		time.Sleep(40 * time.Millisecond)
		b.Publish(Event{Topic: "t"})
		if ready() {
			t.Fatal("woken again within the interval")
		}
		time.Sleep(49 * time.Millisecond)
		if ready() {
			t.Fatal("woken before the interval ended")
		}
		time.Sleep(time.Millisecond)
		if !ready() {
			t.Fatal("not woken when the interval ended")
		}
		if got := r.Take(nil); len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 3 {
			t.Fatalf("took %d messages", len(got))
		}
		time.Sleep(time.Second)
		b.Publish(Event{Topic: "t"})
		if !ready() {
			t.Fatal("an event after a quiet interval did not wake the reader at once")
		}
	})
}

// TestFeedQueueOverflowCountsForEveryReader: events the feed's goroutine
// could not take in time are dropped for every reader, and each is told.
func TestFeedQueueOverflowCountsForEveryReader(t *testing.T) {
	var b Bus
	entered, release := make(chan struct{}), make(chan struct{})
	var blocked atomic.Bool
	f := NewFeed(&b, FeedConfig{Queue: 4, Encode: func(ev Event) []byte {
		if ev.Seq == 1 && blocked.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return []byte("x")
	}})
	a := f.Open(Filter{})
	defer a.Close()
	other := f.Open(Filter{Endpoint: "b"})
	defer other.Close()
	b.Publish(Event{Topic: "t", Endpoint: "a"})
	<-entered // the feed's goroutine is busy with event 1
	for range 4 + 3 {
		b.Publish(Event{Topic: "t", Endpoint: "a"})
	}
	close(release)
	got := takeAll(t, a, 1+4)
	if got[4].Seq != 5 {
		t.Fatalf("last message seq %d", got[4].Seq)
	}
	for name, r := range map[string]*Reader{"all": a, "endpoint b": other} {
		deadline := time.Now().Add(5 * time.Second)
		for r.Dropped() != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: dropped %d, want 3", name, r.Dropped())
			}
			<-r.Ready
		}
	}
}

// TestFeedStopsWithItsLastReader: the feed holds a Bus subscription only
// while a reader is open, and starts again with the next.
func TestFeedStopsWithItsLastReader(t *testing.T) {
	var b Bus
	subs := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.subs)
	}
	f := NewFeed(&b, FeedConfig{Encode: func(ev Event) []byte { return []byte(ev.Topic) }})
	if subs() != 0 {
		t.Fatal("subscribed before any reader")
	}
	r1, r2 := f.Open(Filter{}), f.Open(Filter{Endpoint: "x"})
	if subs() != 1 {
		t.Fatalf("%d subscriptions for two readers", subs())
	}
	r1.Close()
	r1.Close()
	if subs() != 1 {
		t.Fatal("unsubscribed with a reader open")
	}
	r2.Close()
	if subs() != 0 {
		t.Fatal("still subscribed after the last reader closed")
	}
	b.Publish(Event{Topic: "gone"})
	r3 := f.Open(Filter{})
	defer r3.Close()
	b.Publish(Event{Topic: "new"})
	if got := takeAll(t, r3, 1); string(got[0].Bytes) != "new" {
		t.Fatalf("reopened feed gave %q", got[0].Bytes)
	}
}

// TestFeedConcurrentReaders opens and closes readers while events are
// published; run with -race. Every reader sees increasing Seq.
func TestFeedConcurrentReaders(t *testing.T) {
	var b Bus
	f := NewFeed(&b, FeedConfig{Buffer: 16, Encode: func(ev Event) []byte { return []byte(ev.Topic) }})
	stop := make(chan struct{})
	var pubs sync.WaitGroup
	for i := range 3 {
		pubs.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					b.Publish(Event{Topic: "t", Endpoint: fmt.Sprint(i)})
				}
			}
		})
	}
	var readers sync.WaitGroup
	for i := range 6 {
		readers.Go(func() {
			for range 30 {
				filter := Filter{}
				if i%2 == 1 {
					filter.Endpoint = fmt.Sprint(i % 3)
				}
				r := f.Open(filter)
				var last uint64
				for n := 0; n < 20; {
					<-r.Ready
					for _, m := range r.Take(nil) {
						if m.Seq <= last {
							t.Errorf("seq %d after %d", m.Seq, last)
						}
						last = m.Seq
						n++
					}
				}
				r.Close()
			}
		})
	}
	readers.Wait()
	close(stop)
	pubs.Wait()
}
