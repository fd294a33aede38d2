package devmgmt_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
)

// TestVersionRefusedBeforeSending: operations of LwM2M 1.1 (composite
// operations, resource-instance paths) to a device registered with
// lwm2m=1.0 fail with ErrVersion naming both versions, and the device
// receives nothing; the same operations reach a 1.1 device.
func TestVersionRefusedBeforeSending(t *testing.T) {
	s := newStack(t, &devmgmt.Policy{})
	old := newPeer(t, s, "old", "1.0")
	old.register()
	ctx := context.Background()
	ri := lwm2m.NewPath(3, 0, 7, 1)
	pmin := int64(5)
	ops := map[string]func(ep string) error{
		"read-composite": func(ep string) error {
			_, err := values(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindReadComposite, Paths: []lwm2m.Path{pTemp, pBattery}}))
			return err
		},
		"write-composite": func(ep string) error {
			return only(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindWriteComposite, Values: []lwm2m.Record{{Path: pModel, Value: lwm2m.String("m")}}}))
		},
		"observe-composite": func(ep string) error {
			_, _, err := observed(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindObserveComposite, Paths: []lwm2m.Path{pTemp, pBattery}}))
			return err
		},
		"cancel-composite": func(ep string) error {
			return only(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindCancelObserveComposite, Paths: []lwm2m.Path{pTemp, pBattery}}))
		},
		"read of /3/0/7/1": func(ep string) error {
			_, err := values(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{ri}}))
			return err
		},
		"observe of /3/0/7/1": func(ep string) error {
			_, _, err := observed(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindObserve, Paths: []lwm2m.Path{ri}}))
			return err
		},
		"write of /3/0/7/1": func(ep string) error {
			return only(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{ri}, Values: []lwm2m.Record{{Path: ri, Value: lwm2m.Int(1)}}}))
		},
		"write-attributes of /3/0/7/1": func(ep string) error {
			return only(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindWriteAttributes, Paths: []lwm2m.Path{ri}, Attributes: linkformat.Attributes{PMin: &pmin}}))
		},
		"delete of /3/0/7/1": func(ep string) error {
			return only(s.mgr.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindDelete, Paths: []lwm2m.Path{ri}}))
		},
	}
	for name, op := range ops {
		err := op(old.name)
		if !errors.Is(err, devmgmt.ErrVersion) {
			t.Errorf("%s on a 1.0 device: %v, want ErrVersion", name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, name+" needs LwM2M 1.1 or later") ||
			!strings.Contains(msg, `"old" registered with LwM2M 1.0`) {
			t.Errorf("%s: message %q does not name the operation and both versions", name, msg)
		}
	}
	old.mu.Lock()
	sent := old.requests
	old.mu.Unlock()
	if len(sent) != 0 {
		t.Errorf("the 1.0 device received %d requests: %v", len(sent), sent)
	}
	if got := s.mgr.Observations(old.name); len(got) != 0 {
		t.Errorf("observations recorded for refused observes: %+v", got)
	}

	// The version check is the device's: a 1.1 device gets them.
	cur := newPeer(t, s, "current", "1.1")
	cur.register()
	if _, _, err := observed(s.mgr.Do(ctx, cur.name, devmgmt.Operation{Kind: devmgmt.KindObserveComposite, Paths: []lwm2m.Path{pTemp, pBattery}})); err != nil {
		t.Fatal(err)
	}
	for name, op := range ops {
		if err := op(cur.name); errors.Is(err, devmgmt.ErrVersion) {
			t.Errorf("%s on a 1.1 device: %v", name, err)
		}
	}
}
