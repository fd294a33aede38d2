package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/store"
)

// These tests run the Engine's workers for real (real time); the fake
// clock only decides who is awake.

func (e *env) waitStatus(t *testing.T, id int64, want store.OperationStatus) store.Operation {
	t.Helper()
	var op store.Operation
	eventually(t, 10*time.Second, "operation "+string(want), func() bool {
		op = e.op(t, id)
		return op.Status == want
	})
	return op
}

// waitJobsDone waits until no delivery job is waiting or running.
func (e *env) waitJobsDone(t *testing.T) {
	t.Helper()
	eventually(t, 10*time.Second, "delivery jobs done", func() bool {
		idle, err := e.q.Idle(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return idle
	})
}

func TestWorkersDeliverAtOnceAndOnWake(t *testing.T) {
	forEachEngine(t, envOptions{window: time.Minute, workers: true}, func(t *testing.T, e *env) {
		online := e.register(t, "urn:imei:online", false)
		op := e.enqueue(t, online, writeReq("/1/0/1", 600))
		e.waitStatus(t, op.ID, store.OperationConfirmed)

		sleepy := e.register(t, "urn:imei:sleepy", true)
		e.clk.Advance(2 * time.Minute)
		op2 := e.enqueue(t, sleepy, writeReq("/1/0/1", 700))
		e.waitJobsDone(t)
		if got := e.op(t, op2.ID); got.Status != store.OperationQueued || len(e.dev.Calls()) != 1 {
			t.Fatalf("sleeping device: %+v, %d calls", got, len(e.dev.Calls()))
		}
		e.q.Wake(e.update(t, online))
		sleepy = e.update(t, sleepy)
		e.q.Wake(sleepy)
		e.waitStatus(t, op2.ID, store.OperationConfirmed)
		e.waitJobsDone(t)
	})
}

func TestWorkersTwoDevicesDontWait(t *testing.T) {
	forEachEngine(t, envOptions{workers: true}, func(t *testing.T, e *env) {
		slow := e.register(t, "urn:imei:slow", false)
		fast := e.register(t, "urn:imei:fast", false)
		release := make(chan struct{})
		e.dev.setAnswer(func(c call) (devmgmt.Result, error) {
			if c.Endpoint == slow.Endpoint {
				<-release
			}
			return devmgmt.Result{}, nil
		})
		a := e.enqueue(t, slow, writeReq("/1/0/1", 1))
		e.waitStatus(t, a.ID, store.OperationSending)
		b := e.enqueue(t, fast, writeReq("/1/0/1", 2))
		e.waitStatus(t, b.ID, store.OperationConfirmed)
		if got := e.op(t, a.ID); got.Status != store.OperationSending {
			t.Fatalf("slow device: %+v", got)
		}
		close(release)
		e.waitStatus(t, a.ID, store.OperationConfirmed)
	})
}

func TestStopDrainsRunningDelivery(t *testing.T) {
	e := newEnv(t, envOptions{workers: true, url: t.TempDir() + "/flownexus.db"})
	reg := e.register(t, "urn:imei:drain", false)
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	e.dev.setAnswerCtx(func(ctx context.Context, c call) (devmgmt.Result, error) {
		<-release
		ctxErr <- ctx.Err()
		return devmgmt.Result{}, nil
	})
	op := e.enqueue(t, reg, writeReq("/1/0/1", 1))
	e.waitStatus(t, op.ID, store.OperationSending)
	stopped := make(chan error, 1)
	go func() {
		if err := e.q.Stop(context.Background()); err != nil {
			stopped <- err
			return
		}
		stopped <- e.eng.Stop(context.Background())
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned during a delivery: %v", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := <-ctxErr; err != nil {
		t.Fatalf("the drained attempt's context ended: %v", err)
	}
	if got := e.op(t, op.ID); got.Status != store.OperationConfirmed {
		t.Fatalf("after drain: %+v", got)
	}
	// Wake-ups after Stop are ignored.
	e.q.Wake(reg)
}

func TestStopDeadlineInterruptsAttempt(t *testing.T) {
	e := newEnv(t, envOptions{workers: true, url: t.TempDir() + "/flownexus.db"})
	reg := e.register(t, "urn:imei:hard", false)
	started := make(chan struct{})
	e.dev.setAnswerCtx(func(ctx context.Context, c call) (devmgmt.Result, error) {
		close(started)
		<-ctx.Done()
		return devmgmt.Result{}, ctx.Err()
	})
	op := e.enqueue(t, reg, writeReq("/1/0/1", 1))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.eng.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v", err)
	}
	got := e.op(t, op.ID)
	if got.Status != store.OperationQueued || got.Attempts != 1 || got.ResultError != reasonInterrupted {
		t.Fatalf("interrupted: %+v", got)
	}
}
