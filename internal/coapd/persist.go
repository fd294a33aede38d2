package coapd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// savedSession is one DTLS session kept across a planned restart.
type savedSession struct {
	Endpoint string `json:"endpoint"`
	Addr     string `json:"addr"`
	CID      []byte `json:"cid,omitempty"`
	State    []byte `json:"state"` // pion's State.MarshalBinary: session keys and record counters
}

// saveSessions writes the sessions bound to endpoints to
// DTLSConfig.SessionFile, sealed by the credential service. pion/dtls v3
// allows restoring a session only if the original sends nothing after
// the snapshot and the snapshot is used once: the demultiplexer stops
// every write first (so not even close_notify leaves, and counters only
// grow past the snapshot), and restoreSessions deletes the file before
// using it.
func (s *Server) saveSessions() error {
	s.dmu.Lock()
	l := s.dl
	s.dmu.Unlock()
	if l == nil || s.dtlsCfg.SessionFile == "" || !s.sessionsSaved.CompareAndSwap(false, true) {
		return nil
	}
	l.demux.quiesce()
	s.sessionsMu.Lock()
	bound := make(map[string]*udpclient.Conn, len(s.sessions))
	for ep, cc := range s.sessions {
		bound[ep] = cc
	}
	s.sessionsMu.Unlock()
	var out []savedSession
	for ep, cc := range bound {
		gc, ok := cc.NetConn().(*gatedConn)
		if !ok || cc.Context().Err() != nil {
			continue
		}
		state, ok := gc.ConnectionState()
		if !ok {
			continue
		}
		b, err := state.MarshalBinary()
		if err != nil {
			continue
		}
		saved := savedSession{Endpoint: ep, Addr: addrOf(gc.RemoteAddr()).String(), State: b}
		if cid := gc.assoc.cid.Load(); cid != nil {
			saved.CID = []byte(*cid)
		}
		out = append(out, saved)
	}
	// Parked sessions sent nothing since their snapshot; quiesce keeps
	// them from being resumed now.
	for _, pk := range l.demux.parkedSessions() {
		if _, live := bound[pk.endpoint]; live {
			continue
		}
		out = append(out, savedSession{Endpoint: pk.endpoint, Addr: pk.addr.String(), CID: []byte(pk.cid), State: pk.state})
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return err
	}
	sealed := s.creds.SealSessions(raw)
	tmp := s.dtlsCfg.SessionFile + ".tmp"
	if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
		return fmt.Errorf("coapd: save DTLS sessions: %w", err)
	}
	if err := os.Rename(tmp, s.dtlsCfg.SessionFile); err != nil {
		return fmt.Errorf("coapd: save DTLS sessions: %w", err)
	}
	s.log.Info("DTLS sessions saved", "sessions", len(out), "file", s.dtlsCfg.SessionFile)
	return nil
}

// restoreSessions parks the sessions saveSessions wrote, once: the file
// is removed before any is used, and nothing is restored if it cannot be.
func (s *Server) restoreSessions(l *dtlsListener) error {
	path := s.dtlsCfg.SessionFile
	if path == "" {
		return nil
	}
	sealed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("coapd: restore DTLS sessions: %w", err)
	}
	if err := os.Remove(filepath.Clean(path)); err != nil {
		return fmt.Errorf("coapd: restore DTLS sessions: cannot remove %s, not restoring (a session must be used once): %w", path, err)
	}
	raw, err := s.creds.OpenSessions(sealed)
	if err != nil {
		s.log.Warn("saved DTLS sessions not restored", "err", err)
		return nil
	}
	var saved []savedSession
	if err := json.Unmarshal(raw, &saved); err != nil {
		s.log.Warn("saved DTLS sessions not restored", "err", err)
		return nil
	}
	n := 0
	for _, ss := range saved {
		addr, err := netip.ParseAddrPort(ss.Addr)
		if err != nil || ss.Endpoint == "" || len(ss.State) == 0 {
			continue
		}
		// Restored parked: each is resumed when its device next talks or
		// the server sends it a request.
		l.demux.addParked(&parked{endpoint: ss.Endpoint, addr: addr, cid: string(ss.CID), state: ss.State})
		n++
	}
	s.log.Info("DTLS sessions restored", "sessions", n, "saved", len(saved))
	return nil
}
