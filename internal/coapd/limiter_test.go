package coapd

import (
	"strconv"
	"testing"
	"time"
)

// TestFailureLimiter: failures of one key are logged once per interval,
// the line counting those it stands for; audit entries are capped over
// all keys per interval.
func TestFailureLimiter(t *testing.T) {
	var l failureLimiter
	t0 := time.Unix(1_000_000, 0)
	if n, logIt, auditIt := l.note("a", true, t0); n != 1 || !logIt || !auditIt {
		t.Fatalf("first failure: %d %v %v", n, logIt, auditIt)
	}
	for i := range 3 {
		if _, logIt, auditIt := l.note("a", true, t0.Add(time.Duration(i+1)*time.Second)); logIt || auditIt {
			t.Fatalf("failure %d within the interval logged or audited", i+2)
		}
	}
	if n, logIt, auditIt := l.note("a", true, t0.Add(failureInterval)); n != 4 || !logIt || !auditIt {
		t.Fatalf("after the interval: %d %v %v; want 4 failures, logged and audited", n, logIt, auditIt)
	}
	if _, logIt, auditIt := l.note("b", false, t0.Add(failureInterval)); !logIt || auditIt {
		t.Fatalf("a key without identity: logged %v, audited %v", logIt, auditIt)
	}
	// Many identities at once: at most maxFailureAudits audit entries.
	t1 := t0.Add(10 * failureInterval)
	audits := 0
	for i := range 3 * maxFailureAudits {
		if _, _, auditIt := l.note("id-"+strconv.Itoa(i), true, t1); auditIt {
			audits++
		}
	}
	if audits != maxFailureAudits {
		t.Fatalf("%d audit entries in one interval, want %d", audits, maxFailureAudits)
	}
}
