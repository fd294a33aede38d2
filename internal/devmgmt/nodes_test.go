package devmgmt_test

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Two server nodes on one database: a device registers on node A, moves to
// a new address and updates its registration on node B. A request node A
// starts afterwards goes to the new address, where the device now is,
// not to the one node A last saw it at.
func TestRequestFollowsUpdateOnOtherNode(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db.sqlite")
	a := newStackOn(t, db, &devmgmt.Policy{})
	b := newStackOn(t, db, &devmgmt.Policy{})
	before := newPeer(t, a, "urn:dev:moving", "1.1")
	before.register()

	// The same device on a new socket (a new NAT mapping), which takes
	// requests from any server node.
	after := newPeer(t, a, "urn:dev:moving", "1.1")
	l, err := coapNet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := udp.NewServer(options.WithHandlerFunc(after.handle), options.WithErrors(func(error) {}))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	// NewConn works once Serve has taken the listener.
	var cc *udpclient.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if cc, err = srv.NewConn(net.UDPAddrFromAddrPort(b.srv.Addr())); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, before.loc, message.AppLinkFormat, bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code() != codes.Changed {
		t.Fatalf("update on node B: %v", resp.Code())
	}

	name := lwm2m.NewPath(3, 0, 0)
	after.set(name, lwm2m.String("after the move"))
	got, err := values(a.mgr.Do(ctx, "urn:dev:moving", devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{name}}))
	if err != nil {
		t.Fatalf("read through node A: %v", err)
	}
	if v := value(t, got, name); v.String() != "after the move" {
		t.Errorf("read %q: not from the device's new address", v.String())
	}
	if reqs := before.requestsCopy(); len(reqs) != 0 {
		t.Errorf("the old address got %q", reqs)
	}
}
