package coapd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/dtlsmux"
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
	l.Quiesce()
	s.sessionsMu.Lock()
	bound := make(map[string]*udpclient.Conn, len(s.sessions))
	for ep, cc := range s.sessions {
		bound[ep] = cc
	}
	s.sessionsMu.Unlock()
	var out []savedSession
	for ep, cc := range bound {
		dc, ok := cc.NetConn().(*dtlsmux.Conn)
		if !ok || cc.Context().Err() != nil {
			continue
		}
		if ds, ok := dc.Export(ep); ok {
			out = append(out, savedOf(ds))
		}
	}
	// Parked sessions sent nothing since their snapshot; Quiesce keeps
	// them from being resumed now.
	for _, pk := range l.Parked() {
		if _, live := bound[pk.Endpoint]; !live {
			out = append(out, savedOf(pk))
		}
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

// savedOf is the saved form of a DTLS session.
func savedOf(ds dtlsmux.Session) savedSession {
	saved := savedSession{Endpoint: ds.Endpoint, Addr: ds.Addr.String(), State: ds.State}
	if ds.CID != "" {
		saved.CID = []byte(ds.CID)
	}
	return saved
}

// restoreSessions parks the sessions saveSessions wrote, once: the file
// is removed before any is used, and nothing is restored if it cannot be.
func (s *Server) restoreSessions(l *dtlsmux.Listener) error {
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
		l.AddParked(dtlsmux.Session{Endpoint: ss.Endpoint, Addr: addr, CID: string(ss.CID), State: ss.State})
		n++
	}
	s.log.Info("DTLS sessions restored", "sessions", n, "saved", len(saved))
	return nil
}
