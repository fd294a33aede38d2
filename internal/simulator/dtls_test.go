package simulator

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// TestRebindConn moves the socket under a blocked reader: the reader gets
// the server's next datagram on the new socket, the server sees the new
// port, and datagrams from other sources are dropped.
func TestRebindConn(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rc, err := newRebindConn(srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	got := make(chan string, 2)
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := rc.ReadFrom(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	buf := make([]byte, 64)
	recv := func() *net.UDPAddr {
		t.Helper()
		_ = srv.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, from, err := srv.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		return from
	}
	if _, err := rc.WriteTo([]byte("one"), nil); err != nil {
		t.Fatal(err)
	}
	first := recv()
	if err := rc.rebind(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.WriteTo([]byte("two"), nil); err != nil {
		t.Fatal(err)
	}
	second := recv()
	if first.Port == second.Port {
		t.Fatalf("same source port %d after rebind", first.Port)
	}
	// A stranger writing to the new port is ignored; the server is not.
	stranger, _ := net.DialUDP("udp", nil, second)
	defer stranger.Close()
	_, _ = stranger.Write([]byte("spoof"))
	if _, err := srv.WriteToUDP([]byte("reply"), second); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "reply" {
			t.Fatalf("read %q, want the server's reply", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the reader did not move to the new socket")
	}
	_ = rc.Close()
	if _, ok := <-got; ok {
		t.Fatal("read after Close")
	}
	if err := rc.rebind(); err == nil {
		t.Fatal("rebind after Close succeeded")
	}
}

func TestValidateDTLS(t *testing.T) {
	psk := func(int) PSK { return PSK{Identity: "i", Key: []byte("k")} }
	cert := func(int) tls.Certificate { return tls.Certificate{} }
	for name, c := range map[string]Config{
		"psk and certificate":     {Server: "127.0.0.1:5684", PSK: psk, Certificate: cert, RootCAs: x509.NewCertPool()},
		"certificate without CAs": {Server: "127.0.0.1:5684", Certificate: cert},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := (Config{Server: "127.0.0.1:5684", PSK: psk}).Validate(); err != nil {
		t.Errorf("psk: %v", err)
	}
}
