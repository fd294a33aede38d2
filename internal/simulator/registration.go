package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
)

// errNotRegistered is returned by Update and De-register without a
// registration.
var errNotRegistered = errors.New("simulator: not registered")

// registrationPayloadLocked is the object list of Register and Update: a
// root link announcing the default content format (LwM2M 1.1 and later),
// then the objects (with their version when not 1.0) and instances.
func (d *Device) registrationPayloadLocked() []byte {
	newer := d.version.AtLeast(lwm2m.V1_1)
	reg := linkformat.Registration{Objects: d.model.objectLinks(newer)}
	if newer {
		reg.ContentFormats = []lwm2m.MediaType{d.defaultFormatLocked()}
	}
	return linkformat.FormatRegistration(reg)
}

// bindingQueriesLocked returns the binding parameters for binding b: "b=UQ"
// for LwM2M 1.0; for 1.1 and later the transport in b= and queue mode as
// the separate parameter Q.
func (d *Device) bindingQueriesLocked(b string) []string {
	if !d.version.AtLeast(lwm2m.V1_1) {
		return []string{"b=" + b}
	}
	transport := strings.TrimSuffix(b, "Q")
	q := []string{"b=" + transport}
	if transport != b {
		q = append(q, "Q")
	}
	return q
}

// stepDown returns the version to try after v was refused with 4.12.
func stepDown(v lwm2m.Version) (lwm2m.Version, bool) {
	switch v {
	case lwm2m.V1_2:
		return lwm2m.V1_1, true
	case lwm2m.V1_1:
		return lwm2m.V1_0, true
	}
	return "", false
}

// exchange sends req on conn and returns the response code and
// Location-Path; it releases req.
func (d *Device) exchange(conn *client.Conn, req *pool.Message) (codes.Code, string, error) {
	defer conn.ReleaseMessage(req)
	resp, err := conn.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer conn.ReleaseMessage(resp)
	loc, _ := resp.Options().LocationPath()
	d.touch()
	return resp.Code(), loc, nil
}

// touch records an exchange with the server (the queue-mode receive
// window counts from the last one).
func (d *Device) touch() {
	now := d.clock.Now()
	d.mu.Lock()
	d.lastActive = now
	d.mu.Unlock()
}

// register sends Register, stepping the version down on 4.12, and records
// the registration. A new registration drops all observations, when it is
// sent: the server may observe (auto-observe) as soon as it has answered,
// and that Observe can be handled before the answer reaches this
// goroutine.
func (d *Device) register(ctx context.Context) error {
	for {
		d.mu.Lock()
		conn := d.conn
		version := d.version
		lt := d.model.value(pathLifetime).IntValue()
		b := d.model.value(pathBinding).StringValue()
		payload := d.registrationPayloadLocked()
		queries := append([]string{
			"ep=" + d.endpoint,
			"lt=" + strconv.FormatInt(lt, 10),
			"lwm2m=" + string(version),
		}, d.bindingQueriesLocked(b)...)
		// A device that sends is awake: the server may send requests (an
		// auto-observe) before the Register answer reaches the device.
		d.awake = true
		d.lastActive = d.clock.Now()
		d.clearObservationsLocked()
		d.mu.Unlock()
		if conn == nil {
			return ErrStopped
		}
		rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
		req, err := conn.NewPostRequest(rctx, "/rd", message.AppLinkFormat, bytes.NewReader(payload))
		if err != nil {
			cancel()
			return err
		}
		for _, q := range queries {
			req.AddQuery(q)
		}
		d.capture("register", lwm2m.Root, lwm2m.FormatLinkFormat, payload)
		sent := d.clock.Now()
		code, loc, err := d.exchange(conn, req)
		cancel()
		if err != nil {
			d.stats.errors.Add(1)
			d.emit(Event{Kind: EventRegisterFailed, Version: version, Err: err})
			return fmt.Errorf("simulator: %s: register: %w: %w", d.endpoint, ErrRegistration, err)
		}
		switch {
		case code == codes.Created && loc != "":
			now := d.clock.Now()
			d.mu.Lock()
			d.registered = true
			d.location = loc
			d.regLifetime = lt
			d.regBinding = b
			d.regPayload = string(payload)
			d.lastReg = sent
			d.wantUpdate = false
			d.retries = 0
			d.retryAt = time.Time{}
			d.awake = true
			d.lastActive = now
			d.mu.Unlock()
			d.stats.registrations.Add(1)
			d.log.Debug("registered", "location", loc, "version", version)
			d.emit(Event{Kind: EventRegistered, Version: version, Location: loc, Code: code})
			return nil
		case code == codes.PreconditionFailed:
			next, ok := stepDown(version)
			if !ok {
				break
			}
			d.mu.Lock()
			d.version = next
			d.mu.Unlock()
			d.emit(Event{Kind: EventVersionStepDown, Version: next, Code: code})
			continue
		}
		d.stats.errors.Add(1)
		err = fmt.Errorf("simulator: %s: register: %w: server answered %v", d.endpoint, ErrRegistration, code)
		if code == codes.Created {
			err = fmt.Errorf("simulator: %s: register: %w: 2.01 without Location-Path", d.endpoint, ErrRegistration)
		}
		d.emit(Event{Kind: EventRegisterFailed, Version: version, Code: code, Err: err})
		return err
	}
}

// update sends a registration Update carrying what changed since the last
// Register or Update: lt, the binding, the object list. On 4.04 the device
// registers again; on other failures it retries with back-off and gives
// the registration up once its lifetime has passed.
func (d *Device) update(ctx context.Context) error {
	d.mu.Lock()
	if !d.registered {
		d.mu.Unlock()
		return errNotRegistered
	}
	conn, loc := d.conn, d.location
	lt := d.model.value(pathLifetime).IntValue()
	b := d.model.value(pathBinding).StringValue()
	payload := d.registrationPayloadLocked()
	var queries []string
	if lt != d.regLifetime {
		queries = append(queries, "lt="+strconv.FormatInt(lt, 10))
	}
	if b != d.regBinding {
		queries = append(queries, d.bindingQueriesLocked(b)...)
	}
	sendPayload := string(payload) != d.regPayload
	wanted := d.wantUpdate
	d.wantUpdate = false
	d.mu.Unlock()
	if conn == nil {
		return ErrStopped
	}

	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	var req *pool.Message
	var err error
	if sendPayload {
		req, err = conn.NewPostRequest(rctx, loc, message.AppLinkFormat, bytes.NewReader(payload))
		d.capture("update", lwm2m.Root, lwm2m.FormatLinkFormat, payload)
	} else {
		req, err = conn.NewPostRequest(rctx, loc, message.TextPlain, nil)
	}
	if err != nil {
		return err
	}
	for _, q := range queries {
		req.AddQuery(q)
	}
	sent := d.clock.Now()
	code, _, err := d.exchange(conn, req)
	now := d.clock.Now()
	if err == nil && code == codes.Changed {
		d.mu.Lock()
		d.lastReg = sent // the lifetime runs from the request
		d.regLifetime = lt
		d.regBinding = b
		d.regPayload = string(payload)
		d.retries = 0
		d.retryAt = time.Time{}
		d.mu.Unlock()
		d.stats.updates.Add(1)
		d.emit(Event{Kind: EventUpdated, Code: code})
		return nil
	}
	d.stats.errors.Add(1)
	if err == nil {
		err = fmt.Errorf("simulator: %s: update: server answered %v", d.endpoint, code)
	} else {
		err = fmt.Errorf("simulator: %s: update: %w", d.endpoint, err)
	}
	d.emit(Event{Kind: EventUpdateFailed, Code: code, Err: err})
	d.mu.Lock()
	if code == codes.NotFound || now.After(d.lastReg.Add(time.Duration(d.regLifetime)*time.Second)) {
		// The server forgot the registration, or it expired: start over.
		d.registered = false
		d.location = ""
		d.retryAt = time.Time{}
		d.retries = 0
	} else {
		d.retries++
		d.retryAt = now.Add(d.backoffLocked())
		d.wantUpdate = d.wantUpdate || wanted
	}
	d.mu.Unlock()
	return err
}

// deregister sends De-register when the device is registered.
func (d *Device) deregister(ctx context.Context) error {
	d.mu.Lock()
	if !d.registered {
		d.mu.Unlock()
		return nil
	}
	conn, loc := d.conn, d.location
	d.registered = false
	d.location = ""
	d.clearObservationsLocked()
	d.mu.Unlock()
	if conn == nil {
		return ErrStopped
	}
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	req, err := conn.NewDeleteRequest(rctx, loc)
	if err != nil {
		return err
	}
	code, _, err := d.exchange(conn, req)
	if err == nil && code != codes.Deleted {
		err = fmt.Errorf("server answered %v", code)
	}
	if err != nil {
		d.stats.errors.Add(1)
		err = fmt.Errorf("simulator: %s: de-register: %w", d.endpoint, err)
		d.emit(Event{Kind: EventDeregistered, Code: code, Err: err})
		return err
	}
	d.stats.deregistrations.Add(1)
	d.emit(Event{Kind: EventDeregistered, Code: code})
	return nil
}

// send performs the LwM2M Send operation: POST /dp with the current
// values of the Send paths as SenML-CBOR, each record stamped with the
// current time.
func (d *Device) send(ctx context.Context) {
	d.mu.Lock()
	if !d.registered {
		d.mu.Unlock()
		return
	}
	conn := d.conn
	now := d.clock.Now()
	var recs []lwm2m.Record
	for _, p := range d.cfg.SendPaths {
		rs, err := d.model.read(p)
		if err != nil {
			continue
		}
		for _, r := range rs {
			r.Time = now
			recs = append(recs, r)
		}
	}
	d.mu.Unlock()
	if len(recs) == 0 || conn == nil {
		return
	}
	body, err := encode(lwm2m.FormatSenMLCBOR, lwm2m.Root, recs)
	if err != nil {
		d.log.Error("send: encode", "err", err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	req, err := conn.NewPostRequest(rctx, "/dp", message.MediaType(lwm2m.FormatSenMLCBOR), bytes.NewReader(body))
	if err != nil {
		return
	}
	d.stats.sends.Add(1)
	d.capture("send", lwm2m.Root, lwm2m.FormatSenMLCBOR, body)
	code, _, err := d.exchange(conn, req)
	if err == nil && code == codes.Changed {
		d.stats.sendsAcked.Add(1)
		d.emit(Event{Kind: EventSendAcked, Code: code})
		return
	}
	d.stats.errors.Add(1)
	if err == nil {
		err = fmt.Errorf("simulator: %s: send: server answered %v", d.endpoint, code)
	}
	d.emit(Event{Kind: EventSendFailed, Code: code, Err: err})
}
