package simulator

import (
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestDebugObs(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, nil)
	cfg.OnEvent = func(e Event) { t.Logf("event %v %v %v %v %v", e.Kind, e.Op, e.Path, e.Code, e.Err); log.record(e) }
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	o, first := p.observe(ep, "/3303/0/5700", nil, accept(lwm2m.FormatSenMLCBOR))
	t.Logf("first %+v", first)
	log.wait(EventObserve, nil, 5*time.Second)
	clk.Advance(10 * time.Second)
	n := o.next(t, 3*time.Second)
	t.Logf("n %+v", n)
}
