package coapd

import (
	"context"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/registry"
)

// rereadTimeout bounds the read that completes a block-wise notification.
const rereadTimeout = 30 * time.Second

// exchangeLifetime is how long a confirmable message may be retransmitted
// (RFC 7252 §4.8.2, default transmission parameters).
const exchangeLifetime = 247 * time.Second

// seenBlockwise reports whether the block-wise notification with token and
// message ID was handled within exchangeLifetime, and records it. s.bgMu
// must be held.
func (s *Server) seenBlockwise(token []byte, mid int32, now time.Time) bool {
	key := fmt.Sprintf("%x/%d", token, mid)
	if t, ok := s.blockwiseSeen[key]; ok && now.Sub(t) < exchangeLifetime {
		return true
	}
	if len(s.blockwiseSeen) >= 4096 {
		for k, t := range s.blockwiseSeen {
			if now.Sub(t) >= exchangeLifetime {
				delete(s.blockwiseSeen, k)
			}
		}
	}
	if s.blockwiseSeen == nil {
		s.blockwiseSeen = make(map[string]time.Time)
	}
	s.blockwiseSeen[key] = now
	return false
}

// blockwiseNotification handles the first block of a notification too
// large for one message (Block2 NUM=0, M=1), which go-coap's block-wise
// layer cannot take (it pairs blocks with a request of its own). As RFC
// 7959 §2.6 has the observer do, the server acknowledges the block and
// reads the observed resources in full (SetReread, block-wise), then
// stores them as the notification's values. It reports whether it took
// the message; a notification that is not ours, or a server without
// a reread function, goes the usual way. A device that answers an Observe block-wise
// in a separate (confirmable) response, not piggybacked, is taken for a
// notification: the Observe then times out and is made again.
func (s *Server) blockwiseNotification(req *pool.Message, cc *udpclient.Conn) bool {
	reread := s.rereadFunc()
	if reread == nil || req.Type() == message.Acknowledgement {
		// A piggybacked answer is the response to a request of the
		// server's (the Observe itself): go-coap fetches its blocks.
		return false
	}
	v, err := req.GetOptionUint32(message.Block2)
	if err != nil {
		return false
	}
	if _, num, more, err := blockwise.DecodeBlockOption(v); err != nil || num != 0 || !more {
		return false
	}
	obs, reg, ok := s.reg.Observation(req.Token())
	if !ok {
		var err error
		if obs, reg, err = s.reg.LookupObservation(req.Context(), req.Token()); err != nil {
			return false
		}
	}
	pr := peerOf(cc)
	if (pr == nil) != (reg.Transport == registry.TransportUDP) || (pr != nil && pr.endpoint != reg.Endpoint) {
		return false
	}
	s.log.Debug("block-wise notification: reading the observed resources", "endpoint", reg.Endpoint,
		"path", obs.Path().String(), "mid", req.MessageID())
	if req.Type() == message.Confirmable {
		ack := cc.AcquireMessage(req.Context())
		ack.SetType(message.Acknowledgement)
		ack.SetCode(codes.Empty)
		ack.SetToken(nil)
		ack.SetMessageID(req.MessageID())
		// Straight to the socket: go-coap's block-wise and exchange
		// layers would treat an empty message as a request of ours.
		err := writeAnswer(cc, req, ack)
		cc.ReleaseMessage(ack)
		if err != nil {
			s.log.Warn("block-wise notification not acknowledged", "endpoint", reg.Endpoint, "err", err)
		}
	}
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.stopping || s.seenBlockwise(req.Token(), req.MessageID(), time.Now()) {
		return true // a retransmission: acknowledged again, read once
	}
	s.bg.Go(func() {
		ctx, cancel := context.WithTimeout(s.base, rereadTimeout)
		defer cancel()
		recs, err := reread(ctx, reg, obs)
		if err == nil && len(recs) > 0 {
			item := notifyReport(reg, obs, recs, s.reg.Now())
			err = s.ingest.Write(ctx, item)
		}
		if err != nil {
			s.log.Warn("block-wise notification lost: reading the observed resources failed", "endpoint", reg.Endpoint,
				"path", obs.Path().String(), "err", err)
			return
		}
		s.reg.Seen(reg.ID)
		s.emit(Activity{Kind: ActivityNotify, Registration: reg, Records: recs})
	})
	return true
}
