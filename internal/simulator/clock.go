package simulator

import "time"

// Clock is the time source of a device's timing logic. Implementations must
// be safe for concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that is not armed.
	NewTimer() Timer
}

// Timer is a one-shot timer of a Clock. Timers work with absolute
// deadlines, so that a deadline computed from one reading of Now is kept
// exactly even when the clock moves before the timer is armed.
type Timer interface {
	// C delivers the clock's time when the armed deadline has come.
	C() <-chan time.Time
	// ResetAt arms the timer for deadline, replacing any earlier arming
	// and discarding an undelivered expiry; a deadline that has passed
	// fires at once.
	ResetAt(deadline time.Time)
	// Stop disarms the timer and discards an undelivered expiry.
	Stop()
}

// SystemClock returns the Clock of the time package.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return systemTimer{t}
}

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time        { return t.t.C }
func (t systemTimer) Stop()                      { t.t.Stop() }
func (t systemTimer) ResetAt(deadline time.Time) { t.t.Reset(time.Until(deadline)) }

// sleep waits d on c, returning false when done is closed first.
func sleep(c Clock, d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := c.NewTimer()
	defer t.Stop()
	t.ResetAt(c.Now().Add(d))
	select {
	case <-t.C():
		return true
	case <-done:
		return false
	}
}
