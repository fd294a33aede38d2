package dtlsmux

import (
	"net/netip"
	"testing"
)

func TestHandshakeGate(t *testing.T) {
	g := newHandshakeGate(3, 2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if !g.enter(a) || !g.enter(a) {
		t.Fatal("first two handshakes of a refused")
	}
	if g.enter(a) {
		t.Fatal("third handshake of a admitted beyond the per-source cap")
	}
	if !g.enter(b) {
		t.Fatal("b refused below both caps")
	}
	if g.enter(b) {
		t.Fatal("admitted beyond the total cap")
	}
	g.leave(a)
	if !g.enter(b) {
		t.Fatal("b refused after a slot was freed")
	}
	g.leave(a)
	g.leave(b)
	g.leave(b)
	if g.total != 0 || len(g.bySource) != 0 {
		t.Fatalf("after all left: total %d, sources %v", g.total, g.bySource)
	}
	if d := newHandshakeGate(0, 0); d.max != 1024 || d.perSource != 64 {
		t.Fatalf("defaults %d %d", d.max, d.perSource)
	}
}
