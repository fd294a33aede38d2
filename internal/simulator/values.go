package simulator

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Object and resource IDs the device's own logic refers to.
const (
	objServer   = 1
	objDevice   = 3
	objConn     = 4
	objFirmware = 5
	objAppData  = 19
	objTemp     = 3303
	objHumidity = 3304

	resSensorValue = 5700
	resSensorUnits = 5701
	resMinMeasured = 5601
	resMaxMeasured = 5602
	resMinRange    = 5603
	resMaxRange    = 5604
	resResetMinMax = 5605
	resTimestamp   = 5518
	resAppType     = 5750
)

var (
	pathLifetime      = lwm2m.NewPath(objServer, 0, 1)
	pathDefaultPMin   = lwm2m.NewPath(objServer, 0, 2)
	pathDefaultPMax   = lwm2m.NewPath(objServer, 0, 3)
	pathDisable       = lwm2m.NewPath(objServer, 0, 4)
	pathDisableTime   = lwm2m.NewPath(objServer, 0, 5)
	pathBinding       = lwm2m.NewPath(objServer, 0, 7)
	pathUpdateTrigger = lwm2m.NewPath(objServer, 0, 8)
	pathFirmwareVer   = lwm2m.NewPath(objDevice, 0, 3)
	pathReboot        = lwm2m.NewPath(objDevice, 0, 4)
	pathFactoryReset  = lwm2m.NewPath(objDevice, 0, 5)
	pathBattery       = lwm2m.NewPath(objDevice, 0, 9)
	pathMemoryFree    = lwm2m.NewPath(objDevice, 0, 10)
	pathErrorCode     = lwm2m.NewPath(objDevice, 0, 11)
	pathResetError    = lwm2m.NewPath(objDevice, 0, 12)
	pathCurrentTime   = lwm2m.NewPath(objDevice, 0, 13)
	pathRSSI          = lwm2m.NewPath(objConn, 0, 2)
	pathLinkQuality   = lwm2m.NewPath(objConn, 0, 3)
	pathFwPackage     = lwm2m.NewPath(objFirmware, 0, 0)
	pathFwURI         = lwm2m.NewPath(objFirmware, 0, 1)
	pathFwUpdate      = lwm2m.NewPath(objFirmware, 0, 2)
	pathFwState       = lwm2m.NewPath(objFirmware, 0, 3)
	pathFwResult      = lwm2m.NewPath(objFirmware, 0, 5)
	pathFwPkgName     = lwm2m.NewPath(objFirmware, 0, 6)
	pathFwPkgVersion  = lwm2m.NewPath(objFirmware, 0, 7)
)

// walk is a mean-reverting random walk (a discrete Ornstein-Uhlenbeck
// process): each step pulls the value towards mean by theta and adds
// normal noise of deviation sigma, within [lo, hi].
type walk struct {
	v, mean, theta, sigma, lo, hi float64
}

func (w *walk) step(r *rand.Rand) float64 {
	w.v += w.theta*(w.mean-w.v) + w.sigma*r.NormFloat64()
	w.v = math.Min(math.Max(w.v, w.lo), w.hi)
	return round2(w.v)
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// sensorKind describes the sensor objects a device carries.
type sensorKind struct {
	units        string
	mean, spread float64 // per-device mean is mean ± spread
	sigma        float64
	lo, hi       float64 // measurement range
}

var sensorKinds = map[uint16]sensorKind{
	objTemp:     {units: "Cel", mean: 21, spread: 4, sigma: 0.15, lo: -40, hi: 85},
	objHumidity: {units: "%RH", mean: 45, spread: 10, sigma: 0.6, lo: 0, hi: 100},
}

// newSensor returns the initial resources of a sensor instance and its walk.
func newSensor(obj uint16, r *rand.Rand, now time.Time) (map[uint16]any, *walk) {
	k := sensorKinds[obj]
	mean := round2(k.mean + k.spread*(2*r.Float64()-1))
	w := &walk{v: mean, mean: mean, theta: 0.05, sigma: k.sigma, lo: k.lo, hi: k.hi}
	v := lwm2m.Float(mean)
	return map[uint16]any{
		resTimestamp:   lwm2m.Time(now),
		resMinMeasured: v,
		resMaxMeasured: v,
		resMinRange:    lwm2m.Float(k.lo),
		resMaxRange:    lwm2m.Float(k.hi),
		resResetMinMax: nil,
		resSensorValue: v,
		resSensorUnits: lwm2m.String(k.units),
		resAppType:     lwm2m.String(""),
	}, w
}

// buildModel creates the device's object tree with its initial values.
func (d *Device) buildModel() {
	m := newModel(d.reg)
	r := d.rng
	now := d.clock.Now()
	i := d.index

	m.addInstance(objServer, 0, map[uint16]any{
		0: lwm2m.Int(1),
		1: lwm2m.Int(int64(d.cfg.Lifetime / time.Second)),
		2: lwm2m.Int(0),
		3: lwm2m.Int(0),
		4: nil,
		5: lwm2m.Int(86400),
		6: lwm2m.Bool(true),
		7: lwm2m.String(d.cfg.Binding),
		8: nil,
	})
	m.addInstance(objDevice, 0, map[uint16]any{
		0:  lwm2m.String("flownexus"),
		1:  lwm2m.String("flownexus-sim"),
		2:  lwm2m.String(fmt.Sprintf("FNX%08d", i)),
		3:  lwm2m.String("1.0.0"),
		4:  nil,
		5:  nil,
		6:  []lwm2m.Value{lwm2m.Int(1), lwm2m.Int(5)}, // internal battery, USB
		7:  []lwm2m.Value{lwm2m.Int(3700 + int64(r.IntN(400))), lwm2m.Int(5000)},
		8:  []lwm2m.Value{lwm2m.Int(90 + int64(r.IntN(60))), lwm2m.Int(450)},
		9:  lwm2m.Int(60 + int64(r.IntN(41))),
		10: lwm2m.Int(96 + int64(r.IntN(64))),
		11: []lwm2m.Value{lwm2m.Int(0)},
		12: nil,
		13: lwm2m.Time(now),
		14: lwm2m.String("+00:00"),
		15: lwm2m.String("UTC"),
		16: lwm2m.String("UQ"),
		17: lwm2m.String("sensor"),
		18: lwm2m.String("1.0"),
		19: lwm2m.String("1.0.0"),
		20: lwm2m.Int(0),
		21: lwm2m.Int(256),
	})
	m.addInstance(objConn, 0, map[uint16]any{
		0:  lwm2m.Int(6), // LTE-FDD
		1:  []lwm2m.Value{lwm2m.Int(6), lwm2m.Int(7)},
		2:  lwm2m.Int(-95 + int64(r.IntN(30))),
		3:  lwm2m.Int(40 + int64(r.IntN(50))),
		4:  []lwm2m.Value{lwm2m.String(fmt.Sprintf("10.%d.%d.%d", 64+(i>>16)&63, (i>>8)&255, i&255)), lwm2m.String(fmt.Sprintf("2001:db8::%x", i+1))},
		5:  []lwm2m.Value{lwm2m.String("10.64.0.1")},
		7:  []lwm2m.Value{lwm2m.String("iot.flownexus")},
		8:  lwm2m.Int(int64(0x1000 + r.IntN(0xF000))),
		9:  lwm2m.Int(1),
		10: lwm2m.Int(262),
		12: lwm2m.Int(int64(100 + r.IntN(900))),
	})
	protocols := make([]lwm2m.Value, len(d.cfg.FirmwareProtocols))
	for i, p := range d.cfg.FirmwareProtocols {
		protocols[i] = lwm2m.Int(int64(p))
	}
	m.addInstance(objFirmware, 0, map[uint16]any{
		0: lwm2m.Opaque(nil),
		1: lwm2m.String(""),
		2: nil,
		3: lwm2m.Int(0),
		5: lwm2m.Int(0),
		6: lwm2m.String(""),
		7: lwm2m.String(""),
		8: protocols,
		9: lwm2m.Int(deliveryMethods[d.cfg.FirmwareDelivery]),
	})
	m.addInstance(objAppData, 0, map[uint16]any{
		0: []lwm2m.Value{lwm2m.Opaque([]byte("flownexus\x00\x01\x02"))},
		1: lwm2m.Int(1),
		2: lwm2m.Time(now),
		3: lwm2m.String("simulator data"),
		4: lwm2m.String("application/octet-stream"),
	})
	d.walks = map[lwm2m.Path]*walk{}
	for _, obj := range []uint16{objTemp, objHumidity} {
		vals, w := newSensor(obj, r, now)
		m.addInstance(obj, 0, vals)
		d.walks[lwm2m.NewPath(obj, 0)] = w
		m.creatable[obj] = true
	}
	m.dynamic[pathCurrentTime] = func() lwm2m.Value { return lwm2m.Time(d.clock.Now().Add(d.timeOffset)) }
	m.check = d.checkWrite
	m.newInstance = func(obj, id uint16) map[uint16]any {
		vals, w := newSensor(obj, d.rng, d.clock.Now())
		d.walks[lwm2m.NewPath(obj, id)] = w
		return vals
	}
	d.model = m
}

// stepValues advances every simulated value by one step: the sensors walk,
// the battery drains slowly (and recharges when low), the radio signal and
// free memory wander.
func (d *Device) stepValues(now time.Time) {
	m, r := d.model, d.rng
	for _, p := range slices.SortedFunc(maps.Keys(d.walks), lwm2m.Path.Compare) {
		w := d.walks[p]
		if _, _, _, err := m.lookup(p); err != nil {
			delete(d.walks, p)
			continue
		}
		v := w.step(r)
		m.set(p.Child(resSensorValue), lwm2m.Float(v))
		m.set(p.Child(resTimestamp), lwm2m.Time(now))
		if v < m.value(p.Child(resMinMeasured)).FloatValue() {
			m.set(p.Child(resMinMeasured), lwm2m.Float(v))
		}
		if v > m.value(p.Child(resMaxMeasured)).FloatValue() {
			m.set(p.Child(resMaxMeasured), lwm2m.Float(v))
		}
	}
	if r.IntN(20) == 0 {
		b := m.value(pathBattery).IntValue() - 1
		if b < 5 {
			b = 100
		}
		m.set(pathBattery, lwm2m.Int(b))
	}
	rssi := m.value(pathRSSI).IntValue() + int64(r.IntN(3)) - 1
	m.set(pathRSSI, lwm2m.Int(min(max(rssi, -115), -60)))
	lq := m.value(pathLinkQuality).IntValue() + int64(r.IntN(3)) - 1
	m.set(pathLinkQuality, lwm2m.Int(min(max(lq, 0), 100)))
	mem := m.value(pathMemoryFree).IntValue() + int64(r.IntN(5)) - 2
	m.set(pathMemoryFree, lwm2m.Int(min(max(mem, 32), 200)))
}

// resetMinMax sets a sensor instance's min and max to its current value.
func (d *Device) resetMinMax(inst lwm2m.Path) {
	v := d.model.value(inst.Child(resSensorValue))
	d.model.set(inst.Child(resMinMeasured), v)
	d.model.set(inst.Child(resMaxMeasured), v)
}
