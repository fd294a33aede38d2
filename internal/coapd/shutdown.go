package coapd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/dtlsmux"
)

// stopGrace is how long Stop lets messages in flight finish.
const stopGrace = 10 * time.Second

// closeWait bounds the wait for go-coap's server loops once every socket,
// session and association is closed; they return at once then, and a
// loop that does not is left behind (and logged) rather than holding up
// the rest of the shutdown.
const closeWait = 2 * time.Second

// errShutdownIncomplete is matched by the error of Shutdown when messages
// in flight did not finish within its context.
var errShutdownIncomplete = errors.New("coapd: shutdown: messages still in flight")

// sessionSet holds every DTLS session go-coap runs, from its handshake to
// its close. go-coap keeps its own by remote address, so a session
// replaced by a new one from the same address (a rebooted device) drops
// out of go-coap's and would never be closed by its Stop; this set is
// what Shutdown closes. The zero sessionSet is ready for use.
type sessionSet struct {
	mu sync.Mutex
	m  map[*udpclient.Conn]struct{} // guarded by mu
}

func (ss *sessionSet) add(cc *udpclient.Conn) {
	ss.mu.Lock()
	if ss.m == nil {
		ss.m = make(map[*udpclient.Conn]struct{})
	}
	ss.m[cc] = struct{}{}
	ss.mu.Unlock()
	cc.AddOnClose(func() {
		ss.mu.Lock()
		delete(ss.m, cc)
		ss.mu.Unlock()
	})
}

// closeAll closes every session in the set and waits, up to d in all,
// until pion has closed their associations: a session closing says
// close_notify (unless its writes are stopped) and then closes its
// association, and the notice must leave before Shutdown closes the
// associations left. go-coap may be closing some of the sessions at the
// same time, in which case Close returns at once: hence the wait.
func (ss *sessionSet) closeAll(d time.Duration) {
	ss.mu.Lock()
	all := make([]*udpclient.Conn, 0, len(ss.m))
	for cc := range ss.m {
		all = append(all, cc)
	}
	ss.mu.Unlock()
	for _, cc := range all {
		_ = cc.Close()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for _, cc := range all {
		done := cc.Done()
		if dc, ok := cc.NetConn().(*dtlsmux.Conn); ok {
			done = dc.Done()
		}
		select {
		case <-done:
		case <-timer.C:
			return
		}
	}
}

// Stop is Shutdown with a grace of 10 s for the messages in flight.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		s.log.Warn("CoAP shutdown incomplete", "err", err)
	}
}

// Shutdown stops the server in an order that loses nothing acknowledged
// and acknowledges everything stored:
//
//  1. No new message is taken: a request or notification arriving from
//     now on is dropped unanswered (its device retransmits it to the
//     restarted server), and the DTLS socket opens no new handshake and
//     resumes no parked session.
//  2. The messages in flight finish: their values are committed and their
//     answers (the ACKs of Sends and notifications) are written, until ctx
//     ends.
//  3. With DTLSConfig.SessionFile, the DTLS sessions are saved (and from
//     then on send nothing, not even close_notify).
//  4. Every DTLS session, handshake and association is closed, whatever
//     its state (live, parked, replaced by a newer one from the same
//     address, half-way through a handshake, waiting for its cookie), then
//     the sockets.
//
// Background work (block-wise notifications being read) is cancelled and
// waited for. Shutdown returns within ctx's deadline plus a few seconds
// in every state. A message whose handler was still waiting for the
// ingest writer when ctx ended is not acknowledged, though its values may
// be committed: its device retransmits it, so it may be stored twice.
// The error, wrapping ctx's, says that happened. Stop the ingest writer
// after the server. Shutdown and Stop may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	idle := s.adm.drain()
	if l := s.dtlsListener(); l != nil {
		l.Drain()
	}
	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = fmt.Errorf("%w: %w", errShutdownIncomplete, ctx.Err())
	}
	if serr := s.saveSessions(); serr != nil {
		s.log.Error("DTLS sessions not saved", "err", serr)
	}
	s.dtlsSrv.Stop()
	s.dtlsSessions.closeAll(closeWait)
	if l := s.dtlsListener(); l != nil {
		l.CloseAll()
	}
	s.dtls.StoppedWithin(closeWait, s.log)
	s.srv.Stop()
	s.udp.StoppedWithin(closeWait, s.log)
	s.bgMu.Lock()
	s.stopping = true
	s.bgMu.Unlock()
	s.stopBase()
	s.bg.Wait()
	return err
}
