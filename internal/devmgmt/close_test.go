package devmgmt

import (
	"context"
	"testing"
	"time"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/registry"
)

// TestCloseWaitsForBackground: Close cancels running background work and
// returns only when it has ended; nothing starts after Close.
func TestCloseWaitsForBackground(t *testing.T) {
	m := New(Config{Registry: &registry.Registry{}, Dial: func(context.Context, registry.Registration) (*udpclient.Conn, error) {
		return nil, context.Canceled
	}})
	started, ended := make(chan struct{}), make(chan struct{})
	if !m.goBackground(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		close(ended)
	}) {
		t.Fatal("background work refused before Close")
	}
	<-started
	m.Close()
	select {
	case <-ended:
	default:
		t.Fatal("Close returned before the background work ended")
	}
	if m.goBackground(func(context.Context) { t.Error("background work ran after Close") }) {
		t.Fatal("background work accepted after Close")
	}
}
