package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

func timeoutErr(c call) (devmgmt.Result, error) {
	return devmgmt.Result{}, fmt.Errorf("devmgmt: write on %q: %w (%w)", c.Endpoint, devmgmt.ErrTimeout, context.DeadlineExceeded)
}

func coapErr(code codes.Code) func(c call) (devmgmt.Result, error) {
	return func(c call) (devmgmt.Result, error) {
		return devmgmt.Result{}, &devmgmt.CoAPError{Op: string(c.Kind), Endpoint: c.Endpoint, Path: c.Paths[0].String(), Code: code}
	}
}

// TestQueueModeWaitsForWake: an operation for a sleeping queue-mode device
// is not sent until the device talks again, then inside its window.
func TestQueueModeWaitsForWake(t *testing.T) {
	forEachEngine(t, envOptions{window: time.Minute}, func(t *testing.T, e *env) {
		reg := e.register(t, "urn:imei:sleepy", true)
		e.clk.Advance(2 * time.Minute) // the window after Register has passed
		op := e.enqueue(t, reg, writeReq("/1/0/1", 600))
		if op.Status != store.OperationQueued || op.Attempts != 0 {
			t.Fatalf("queued: %+v", op)
		}
		e.deliver(t, reg)
		if n := len(e.dev.Calls()); n != 0 {
			t.Fatalf("sent %d requests to a sleeping device", n)
		}
		e.clk.Advance(10 * time.Minute)
		reg = e.update(t, reg) // wakes up
		e.clk.Advance(59 * time.Second)
		e.deliver(t, reg)
		calls := e.dev.Calls()
		if len(calls) != 1 || calls[0].Kind != devmgmt.KindWrite || calls[0].Records[0].Value.IntValue() != 600 {
			t.Fatalf("calls after wake: %+v", calls)
		}
		got := e.op(t, op.ID)
		if got.Status != store.OperationConfirmed || got.Attempts != 1 || !got.LastAttemptAt.Equal(e.clk.Now()) {
			t.Fatalf("after delivery: %+v", got)
		}
		if st := e.statuses(op.ID); !slices.Equal(st, []string{"QUEUED", "SENDING", "CONFIRMED"}) {
			t.Fatalf("events: %v", st)
		}
		// At the window's end nothing more is sent.
		op2 := e.enqueue(t, reg, writeReq("/1/0/1", 700))
		e.clk.Advance(time.Second)
		e.deliver(t, reg)
		if got := e.op(t, op2.ID); got.Status != store.OperationQueued || len(e.dev.Calls()) != 1 {
			t.Fatalf("after the window: %+v, %d calls", got, len(e.dev.Calls()))
		}
	})
}

// TestRetryOnNextWakeThenFail: a timeout counts an attempt; the next
// attempt waits for the next wake; the third failure is FAILED with the
// reason, and operations behind it wait until then.
func TestRetryOnNextWakeThenFail(t *testing.T) {
	forEachEngine(t, envOptions{window: time.Minute}, func(t *testing.T, e *env) {
		reg := e.register(t, "urn:imei:flaky", true)
		e.dev.setAnswer(func(c call) (devmgmt.Result, error) {
			if c.Paths[0].String() == "/1/0/1" {
				return timeoutErr(c)
			}
			return devmgmt.Result{}, nil
		})
		head := e.enqueue(t, reg, writeReq("/1/0/1", 600))
		behind := e.enqueue(t, reg, writeReq("/1/0/3", 5))
		for attempt := 1; attempt <= 3; attempt++ {
			e.deliver(t, reg)
			e.deliver(t, reg) // the same wake: no second attempt
			n := 0
			for _, c := range e.dev.Calls() {
				if c.Paths[0].String() == "/1/0/1" {
					n++
				}
			}
			if n != attempt {
				t.Fatalf("wake %d: %d attempts of the head", attempt, n)
			}
			got := e.op(t, head.ID)
			if got.Attempts != attempt || !strings.Contains(got.ResultError, "did not answer in time") || got.ResultCode != "" {
				t.Fatalf("wake %d: %+v", attempt, got)
			}
			want := store.OperationQueued
			if attempt == 3 {
				want = store.OperationFailed
			}
			if got.Status != want {
				t.Fatalf("wake %d: status %s, want %s", attempt, got.Status, want)
			}
			if attempt < 3 {
				if b := e.op(t, behind.ID); b.Status != store.OperationQueued || b.Attempts != 0 {
					t.Fatalf("wake %d: the operation behind went ahead: %+v", attempt, b)
				}
				e.clk.Advance(5 * time.Minute)
				reg = e.update(t, reg)
			}
		}
		// The failed head no longer blocks: the next one went in the same
		// round as the last attempt.
		if b := e.op(t, behind.ID); b.Status != store.OperationConfirmed {
			t.Fatalf("behind: %+v", b)
		}
		if st := e.statuses(head.ID); !slices.Equal(st, []string{"QUEUED", "SENDING", "QUEUED", "SENDING", "QUEUED", "SENDING", "FAILED"}) {
			t.Fatalf("events: %v", st)
		}
	})
}

// TestPermanentCodesFailAtOnce applies the code table.
func TestPermanentCodesFailAtOnce(t *testing.T) {
	forEachEngine(t, envOptions{}, func(t *testing.T, e *env) {
		reg := e.register(t, "urn:imei:codes", false)
		cases := []struct {
			code   codes.Code
			status store.OperationStatus
		}{
			{codes.NotFound, store.OperationFailed},
			{codes.MethodNotAllowed, store.OperationFailed},
			{codes.BadRequest, store.OperationFailed},
			{codes.Unauthorized, store.OperationFailed},
			{codes.NotImplemented, store.OperationFailed},
			{codes.InternalServerError, store.OperationQueued},
			{codes.ServiceUnavailable, store.OperationQueued},
			{codes.TooManyRequests, store.OperationQueued},
		}
		for _, c := range cases {
			e.dev.setAnswer(coapErr(c.code))
			op := e.enqueue(t, reg, writeReq("/1/0/1", 1))
			e.deliver(t, reg)
			got := e.op(t, op.ID)
			if got.Status != c.status || got.Attempts != 1 || got.ResultCode != devmgmt.CodeString(c.code) ||
				!strings.Contains(got.ResultError, "device answered "+devmgmt.CodeString(c.code)) {
				t.Errorf("%s: %+v", devmgmt.CodeString(c.code), got)
			}
			if c.status == store.OperationQueued {
				// Clear it so that it does not hold the queue.
				e.clk.Advance(time.Second)
				reg = e.update(t, reg)
				e.dev.setAnswer(nil)
				e.deliver(t, reg)
				if got := e.op(t, op.ID); got.Status != store.OperationConfirmed || got.Attempts != 2 || got.ResultCode != "" || got.ResultError != "" {
					t.Errorf("%s then success: %+v", devmgmt.CodeString(c.code), got)
				}
			}
		}
	})
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want verdict
		code string
	}{
		{nil, confirmed, ""},
		{&devmgmt.CoAPError{Code: codes.NotFound}, fail, "4.04"},
		{fmt.Errorf("wrapped: %w", &devmgmt.CoAPError{Code: codes.BadGateway}), retry, "5.02"},
		{&devmgmt.CoAPError{Code: codes.GatewayTimeout}, retry, "5.04"},
		{&devmgmt.CoAPError{Code: codes.ProxyingNotSupported}, fail, "5.05"},
		{&devmgmt.CoAPError{Code: codes.RequestEntityIncomplete}, retry, "4.08"},
		{&devmgmt.CoAPError{Code: codes.Conflict}, retry, "4.09"},
		{&devmgmt.CoAPError{Code: codes.PreconditionFailed}, fail, "4.12"},
		{&devmgmt.CoAPError{Code: codes.UnsupportedMediaType}, fail, "4.15"},
		{&devmgmt.CoAPError{Code: codes.Continue}, fail, "2.31"},
		{fmt.Errorf("x: %w", devmgmt.ErrTimeout), retry, ""},
		{context.DeadlineExceeded, retry, ""},
		{context.Canceled, retry, ""},
		{errors.New("coapd: dial: connection refused"), retry, ""},
		{fmt.Errorf("x: %w", devmgmt.ErrOffline), notSent, ""},
		{fmt.Errorf("x: %w", devmgmt.ErrInvalid), reject, ""},
		{fmt.Errorf("x: %w", devmgmt.ErrNoObservation), reject, ""},
		{fmt.Errorf("%w: read-composite needs LwM2M 1.1 or later", devmgmt.ErrVersion), reject, ""},
		{fmt.Errorf("x: %w: %w", devmgmt.ErrBadResponse, lwm2m.ErrSyntax), fail, ""},
	}
	for _, c := range cases {
		v, code := classify(c.err)
		if v != c.want || code != c.code {
			t.Errorf("classify(%v) = %v %q, want %v %q", c.err, v, code, c.want, c.code)
		}
	}
}

// TestOrderAndRounds: operations go out in the order queued, PerRound per
// job; the rest is handed to a new job.
func TestOrderAndRounds(t *testing.T) {
	forEachEngine(t, envOptions{perRound: 4}, func(t *testing.T, e *env) {
		ctx := context.Background()
		reg := e.register(t, "urn:imei:order", false)
		other := e.register(t, "urn:imei:other", false)
		var ids []int64
		for i := range 6 {
			ids = append(ids, e.enqueue(t, reg, writeReq("/1/0/1", int64(100+i))).ID)
		}
		e.enqueue(t, other, writeReq("/1/0/1", 1))
		// One delivery job waits per endpoint, however many operations.
		jobs, err := e.st.ListJobs(ctx, KindDeliver)
		if err != nil || len(jobs) != 2 {
			t.Fatalf("jobs after 7 operations for 2 endpoints: %+v %v", jobs, err)
		}
		// The engine took them (running), and runs reg's.
		if claimed, err := e.st.ClaimJobs(ctx, "test", []string{KindDeliver}, 10); err != nil || len(claimed) != 2 {
			t.Fatalf("claim: %+v %v", claimed, err)
		}
		e.deliver(t, reg)
		calls := e.dev.Calls()
		if len(calls) != 4 {
			t.Fatalf("first round sent %d", len(calls))
		}
		// The round handed the rest to a new job.
		after, err := e.st.ListJobs(ctx, KindDeliver)
		if err != nil || len(after) != 3 || after[2].State != store.JobAvailable || after[2].Key != strconv.FormatInt(reg.EndpointID, 10) {
			t.Fatalf("jobs after the first round: %+v %v", after, err)
		}
		e.deliver(t, reg)
		calls = e.dev.Calls()
		if len(calls) != 6 {
			t.Fatalf("two rounds sent %d", len(calls))
		}
		for i, c := range calls {
			if c.Endpoint != reg.Endpoint || c.Records[0].Value.IntValue() != int64(100+i) {
				t.Fatalf("call %d: %+v", i, c)
			}
		}
		for _, id := range ids {
			if got := e.op(t, id); got.Status != store.OperationConfirmed {
				t.Fatalf("operation %d: %s", id, got.Status)
			}
		}
	})
}

// TestCancelledNeverSent: a cancelled operation is skipped; cancelling one
// that is SENDING or finished is a conflict; another endpoint's operation
// is not found.
func TestCancelledNeverSent(t *testing.T) {
	forEachEngine(t, envOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		reg := e.register(t, "urn:imei:cancel", false)
		other := e.register(t, "urn:imei:other", false)
		a := e.enqueue(t, reg, writeReq("/1/0/1", 1))
		b := e.enqueue(t, reg, writeReq("/1/0/1", 2))
		c := e.enqueue(t, reg, writeReq("/1/0/1", 3))
		got, err := e.q.Cancel(ctx, reg.EndpointID, reg.Endpoint, b.ID)
		if err != nil || got.Status != store.OperationCancelled {
			t.Fatalf("cancel: %+v %v", got, err)
		}
		if _, err := e.q.Cancel(ctx, other.EndpointID, other.Endpoint, a.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("cancel through another endpoint: %v", err)
		}
		e.dev.setAnswer(func(call) (devmgmt.Result, error) {
			// While a is being sent, it cannot be cancelled.
			if _, err := e.q.Cancel(ctx, reg.EndpointID, reg.Endpoint, a.ID); !errors.Is(err, store.ErrConflict) {
				t.Errorf("cancel while sending: %v", err)
			}
			return devmgmt.Result{}, nil
		})
		e.deliver(t, reg)
		e.dev.setAnswer(nil)
		var sent []int64
		for _, call := range e.dev.Calls() {
			sent = append(sent, call.Records[0].Value.IntValue())
		}
		if !slices.Equal(sent, []int64{1, 3}) {
			t.Fatalf("sent %v", sent)
		}
		if got := e.op(t, c.ID); got.Status != store.OperationConfirmed {
			t.Fatalf("c: %+v", got)
		}
		if _, err := e.q.Cancel(ctx, reg.EndpointID, reg.Endpoint, c.ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("cancel of a confirmed operation: %v", err)
		}
		if st := e.statuses(b.ID); !slices.Equal(st, []string{"QUEUED", "CANCELLED"}) {
			t.Fatalf("events of the cancelled one: %v", st)
		}
	})
}

// TestOfflineAndNotSent: an offline device gets nothing; a device that
// went offline between the check and the send costs no attempt.
func TestOfflineAndNotSent(t *testing.T) {
	forEachEngine(t, envOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		reg := e.register(t, "urn:imei:gone", false)
		op := e.enqueue(t, reg, writeReq("/1/0/1", 1))
		e.dev.setAnswer(func(c call) (devmgmt.Result, error) {
			return devmgmt.Result{}, fmt.Errorf("%w: %q", devmgmt.ErrOffline, c.Endpoint)
		})
		e.deliver(t, reg)
		if got := e.op(t, op.ID); got.Status != store.OperationQueued || got.Attempts != 0 {
			t.Fatalf("not sent: %+v", got)
		}
		if _, err := e.reg.Deregister(ctx, reg.ID); err != nil {
			t.Fatal(err)
		}
		e.dev.setAnswer(nil)
		e.deliver(t, reg)
		if n := len(e.dev.Calls()); n != 1 {
			t.Fatalf("%d calls to an offline device", n)
		}
		e.clk.Advance(time.Minute)
		reg = e.register(t, "urn:imei:gone", false)
		e.deliver(t, reg)
		if got := e.op(t, op.ID); got.Status != store.OperationConfirmed || got.Attempts != 1 {
			t.Fatalf("after Register: %+v", got)
		}
	})
}

// TestInterruptedAttemptRecovered: an operation left SENDING by a dead
// process counts an attempt and is sent again once it is stale.
func TestInterruptedAttemptRecovered(t *testing.T) {
	forEachEngine(t, envOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		reg := e.register(t, "urn:imei:crash", false)
		op := e.enqueue(t, reg, writeReq("/1/0/1", 1))
		if _, res, err := e.st.ClaimOperation(ctx, reg.EndpointID, store.ClaimParams{}); err != nil || res != store.ClaimClaimed {
			t.Fatalf("claim: %v %v", res, err)
		}
		// The claiming process died. While the claim is fresh, nothing.
		e.clk.Advance(DefaultAttemptTimeout)
		reg = e.update(t, reg)
		e.deliver(t, reg)
		if len(e.dev.Calls()) != 0 || e.op(t, op.ID).Status != store.OperationSending {
			t.Fatal("a fresh SENDING operation was touched")
		}
		e.clk.Advance(2 * time.Minute)
		reg = e.update(t, reg)
		e.deliver(t, reg)
		got := e.op(t, op.ID)
		if got.Status != store.OperationConfirmed || got.Attempts != 2 || len(e.dev.Calls()) != 1 {
			t.Fatalf("after recovery: %+v, %d calls", got, len(e.dev.Calls()))
		}
		if st := e.statuses(op.ID); !slices.Equal(st, []string{"QUEUED", "QUEUED", "SENDING", "CONFIRMED"}) {
			t.Fatalf("events: %v", st)
		}
	})
}

// TestRejectedAndBadRecords: a stored operation that cannot be decoded
// and an answer that cannot be decoded both fail at once.
func TestRejectedAndBadAnswer(t *testing.T) {
	forEachEngine(t, envOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		reg := e.register(t, "urn:imei:bad", false)
		broken, err := e.st.CreateOperation(ctx, store.Operation{EndpointID: reg.EndpointID, Kind: "write",
			Paths: []lwm2m.Path{lwm2m.MustParsePath("/1/0/1")}, Payload: []byte(`{"records":[{"path":"/1/0/1","type":"integer","value":"x"}]}`)})
		if err != nil {
			t.Fatal(err)
		}
		read := e.enqueue(t, reg, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.MustParsePath("/3/0")}})
		e.dev.setAnswer(func(call) (devmgmt.Result, error) {
			return devmgmt.Result{}, fmt.Errorf("devmgmt: read: %w: %w", devmgmt.ErrBadResponse, lwm2m.ErrSyntax)
		})
		e.deliver(t, reg)
		if got := e.op(t, broken.ID); got.Status != store.OperationFailed || got.Attempts != 0 || !strings.Contains(got.ResultError, "invalid operation") {
			t.Fatalf("broken payload: %+v", got)
		}
		if got := e.op(t, read.ID); got.Status != store.OperationFailed || got.Attempts != 1 {
			t.Fatalf("bad answer: %+v", got)
		}
		if n := len(e.dev.Calls()); n != 1 {
			t.Fatalf("%d calls: the broken operation was sent", n)
		}
	})
}

// TestResultKept: a confirmed read keeps the decoded values.
func TestResultKept(t *testing.T) {
	forEachEngine(t, envOptions{}, func(t *testing.T, e *env) {
		reg := e.register(t, "urn:imei:read", false)
		want := []lwm2m.Record{{Path: lwm2m.MustParsePath("/3/0/0"), Value: lwm2m.String("flownexus")},
			{Path: lwm2m.MustParsePath("/3/0/9"), Value: lwm2m.Int(87)}}
		e.dev.setAnswer(func(call) (devmgmt.Result, error) { return devmgmt.Result{Values: want}, nil })
		op := e.enqueue(t, reg, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.MustParsePath("/3/0")}})
		e.deliver(t, reg)
		got := e.op(t, op.ID)
		res, err := DecodeResult(got.Response)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Values) != 2 || !res.Values[1].Value.Equal(lwm2m.Int(87)) || res.Values[0].Value.StringValue() != "flownexus" {
			t.Fatalf("result: %+v", res)
		}
	})
}
