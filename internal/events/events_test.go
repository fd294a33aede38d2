package events

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestPublishOrderAndFilter(t *testing.T) {
	var b Bus
	all := b.Subscribe(10, nil)
	defer all.Close()
	onlyA := b.Subscribe(10, func(ev Event) bool { return ev.Endpoint == "a" })
	defer onlyA.Close()
	for i := range 5 {
		ep := "a"
		if i%2 == 1 {
			ep = "b"
		}
		b.Publish(Event{Topic: "t", Endpoint: ep, Data: i})
	}
	for i := range 5 {
		ev := <-all.C
		if ev.Data != i {
			t.Fatalf("event %d: got %v", i, ev.Data)
		}
		if ev.Time.IsZero() {
			t.Fatal("Publish left Time zero")
		}
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d: seq %d", i, ev.Seq)
		}
	}
	for _, want := range []int{0, 2, 4} {
		if ev := <-onlyA.C; ev.Data != want || ev.Endpoint != "a" || ev.Seq != uint64(want+1) {
			t.Fatalf("filtered: got %+v, want data %d", ev, want)
		}
	}
	select {
	case ev := <-onlyA.C:
		t.Fatalf("filtered subscription got %+v", ev)
	default:
	}
}

func TestSlowSubscriberDropsWithoutBlocking(t *testing.T) {
	var b Bus
	slow := b.Subscribe(2, nil)
	defer slow.Close()
	fast := b.Subscribe(100, nil)
	defer fast.Close()
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			b.Publish(Event{Topic: "t", Data: i})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a full subscriber")
	}
	if got := slow.Dropped(); got != 8 {
		t.Fatalf("slow subscriber dropped %d, want 8", got)
	}
	if got := fast.Dropped(); got != 0 {
		t.Fatalf("fast subscriber dropped %d", got)
	}
	if ev := <-slow.C; ev.Data != 0 {
		t.Fatalf("slow subscriber kept %v first, want the oldest", ev.Data)
	}
	if len(fast.C) != 10 {
		t.Fatalf("fast subscriber has %d events", len(fast.C))
	}
}

func TestCloseEndsChannelAndIsIdempotent(t *testing.T) {
	var b Bus
	s := b.Subscribe(0, nil)
	if cap(s.C) != DefaultBuffer {
		t.Fatalf("default buffer %d", cap(s.C))
	}
	b.Publish(Event{Topic: "before"})
	s.Close()
	s.Close()
	b.Publish(Event{Topic: "after"})
	var got []string
	for ev := range s.C {
		got = append(got, ev.Topic)
	}
	if fmt.Sprint(got) != "[before]" {
		t.Fatalf("after Close: %v", got)
	}
}

func TestNilBusPublish(t *testing.T) {
	var b *Bus
	b.Publish(Event{Topic: "t"}) // must not panic
}

// TestConcurrentPublishSubscribeClose runs publishers against subscribers
// that come and go; run with -race.
func TestConcurrentPublishSubscribeClose(t *testing.T) {
	var b Bus
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					b.Publish(Event{Topic: "t"})
				}
			}
		})
	}
	for range 200 {
		s := b.Subscribe(1, nil)
		<-s.C
		s.Close()
	}
	close(stop)
	wg.Wait()
}

// TestSeqIsDeliveryOrder: with publishers racing, every subscriber still
// gets increasing Seq, without gaps when it drops nothing.
func TestSeqIsDeliveryOrder(t *testing.T) {
	var b Bus
	const publishers, each = 4, 2000
	subs := []*Subscription{b.Subscribe(publishers*each, nil), b.Subscribe(publishers*each, nil)}
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range each {
				b.Publish(Event{Topic: "t"})
			}
		})
	}
	wg.Wait()
	for i, s := range subs {
		s.Close()
		want := uint64(1)
		for ev := range s.C {
			if ev.Seq != want {
				t.Fatalf("subscriber %d: seq %d, want %d", i, ev.Seq, want)
			}
			want++
		}
		if want != publishers*each+1 {
			t.Fatalf("subscriber %d got %d events", i, want-1)
		}
	}
}
