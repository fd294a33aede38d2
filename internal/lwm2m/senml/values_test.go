package senml

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Numbers of unknown resources take their natural type.
func TestUntypedNumbers(t *testing.T) {
	cases := []struct {
		lit  string
		want lwm2m.Value
	}{
		{"0", lwm2m.Int(0)},
		{"-0", lwm2m.Int(0)},
		{"-42", lwm2m.Int(-42)},
		{"1.0", lwm2m.Int(1)},
		{"1e3", lwm2m.Int(1000)},
		{"1.5", lwm2m.Float(1.5)},
		{"-9223372036854775808", lwm2m.Int(math.MinInt64)},
		{"9223372036854775807", lwm2m.Int(math.MaxInt64)},
		{"9223372036854775808", lwm2m.Uint(1 << 63)},
		{"18446744073709551615", lwm2m.Uint(math.MaxUint64)},
		{"18446744073709551616", lwm2m.Float(1 << 64)},
		{"-9223372036854775809", lwm2m.Int(math.MinInt64)}, // rounds to -2^63 as a float, which is exact
		{"-1e19", lwm2m.Float(-1e19)},
		{"1e-7", lwm2m.Float(1e-7)},
	}
	for _, c := range cases {
		in := `[{"n":"/9/0/1","v":` + c.lit + `}]`
		rs, err := DecodeJSON([]byte(in), lwm2m.Root, nil)
		if err != nil {
			t.Errorf("%s: %v", c.lit, err)
			continue
		}
		if !rs[0].Value.Equal(c.want) {
			t.Errorf("%s: got %#v, want %#v", c.lit, rs[0].Value, c.want)
		}
	}
}

// Numbers of known resources take the resource type when exact in it.
func TestTypedNumbers(t *testing.T) {
	cases := []struct {
		res  string
		lit  string
		want lwm2m.Value
	}{
		{"0", "1e2", lwm2m.Int(100)},
		{"0", "-5.0", lwm2m.Int(-5)},
		{"1", "18446744073709551615", lwm2m.Uint(math.MaxUint64)},
		{"1", "1.8e19", lwm2m.Uint(18000000000000000000)},
		{"2", "3", lwm2m.Float(3)},
		{"2", "-0", lwm2m.Float(math.Copysign(0, -1))},
		{"2", "9007199254740993", lwm2m.Float(9007199254740992)},
		{"2", "18446744073709551615", lwm2m.Float(1 << 64)},
		{"6", "1700000000", lwm2m.TimeUnix(1700000000)},
		{"6", "-1", lwm2m.TimeUnix(-1)},
	}
	for _, c := range cases {
		in := `[{"n":"/32769/0/` + c.res + `","v":` + c.lit + `}]`
		rs, err := DecodeJSON([]byte(in), base9, testTypes)
		if err != nil {
			t.Errorf("%s=%s: %v", c.res, c.lit, err)
			continue
		}
		if !rs[0].Value.Equal(c.want) {
			t.Errorf("%s=%s: got %#v, want %#v", c.res, c.lit, rs[0].Value, c.want)
		}
	}
}

func TestBaseValue(t *testing.T) {
	cases := []struct {
		in   string
		want lwm2m.Value
	}{
		{`[{"bv":10,"n":"/32769/0/0","v":-15}]`, lwm2m.Int(-5)},
		{`[{"bv":0.5,"n":"/32769/0/2","v":1}]`, lwm2m.Float(1.5)},
		{`[{"bv":-1,"n":"/32769/0/1","v":18446744073709551615}]`, lwm2m.Uint(math.MaxUint64 - 1)},
		{`[{"bv":9223372036854775807,"n":"/32769/0/1","v":1}]`, lwm2m.Uint(1 << 63)},
		{`[{"bv":5,"n":"/32769/0/3","vs":"x"}]`, lwm2m.String("x")},
		{`[{"bv":5,"n":"/32769/0/0","v":1},{"bv":0,"n":"/32769/0/0","v":1}]`, lwm2m.Int(1)},
	}
	for _, c := range cases {
		rs, err := DecodeJSON([]byte(c.in), base9, testTypes)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := rs[len(rs)-1].Value; !got.Equal(c.want) {
			t.Errorf("%s: got %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	cases := []struct {
		in   string
		base string
		want []string
	}{
		{`[{"n":"9","v":1},{"n":"7/1","v":2}]`, "/3/0", []string{"/3/0/9", "/3/0/7/1"}},
		{`[{"v":1}]`, "/3/0/9", []string{"/3/0/9"}},
		{`[{"n":"3/0/9","v":1}]`, "/", []string{"/3/0/9"}},
		{`[{"bn":"/3/0/9","v":1}]`, "/3/0/9", []string{"/3/0/9"}},
		{`[{"bn":"/3/0/9/","v":1}]`, "/3/0", []string{"/3/0/9"}},
		{`[{"bn":"/3/0","n":"/9","v":1}]`, "/3/0", []string{"/3/0/9"}},
		{`[{"bn":"/","n":"3/0/9","v":1}]`, "/", []string{"/3/0/9"}},
		{`[{"bn":"/3/0/","n":"9","v":1},{"bn":"","n":"/3/0/1","vs":"x"}]`, "/3/0", []string{"/3/0/9", "/3/0/1"}},
		{`[{"bn":"/3/","n":"0/9","v":1}]`, "/3/0", []string{"/3/0/9"}},
	}
	for _, c := range cases {
		rs, err := DecodeJSON([]byte(c.in), lwm2m.MustParsePath(c.base), nil)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Path.String())
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: got %v, want %v", c.in, got, c.want)
		}
	}
}

func TestOpaqueEncodings(t *testing.T) {
	want := []byte{0xfb, 0xff, 0xbf}
	for _, s := range []string{"-_-_", "+/+/"} {
		for _, pad := range []string{"", "=", "=="} {
			in := `[{"n":"/32769/0/5","vd":"` + s + pad + `"}]`
			rs, err := DecodeJSON([]byte(in), base9, testTypes)
			if err != nil {
				t.Errorf("%s: %v", in, err)
				continue
			}
			if !rs[0].Value.Equal(lwm2m.Opaque(want)) {
				t.Errorf("%s: got %#v", in, rs[0].Value)
			}
		}
	}
}

func TestTimes(t *testing.T) {
	cases := []struct {
		fields string
		want   time.Time
	}{
		{`"t":1700000000`, t0},
		{`"t":1700000000.000001`, t0.Add(time.Microsecond)},
		{`"t":1700000000.9999996`, t0.Add(time.Second)},
		{`"bt":1700000000,"t":-0.25`, t0.Add(-250 * time.Millisecond)},
		{`"t":268435456`, time.Unix(1<<28, 0).UTC()},
		{`"t":268435455`, testNow.Add(268435455 * time.Second)},
		{`"t":-5`, testNow.Add(-5 * time.Second)},
		{`"t":-0.5`, testNow.Add(-500 * time.Millisecond)},
		{`"t":0`, testNow},
		{`"bt":-10`, testNow.Add(-10 * time.Second)},
		{`"t":253402300799`, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{``, time.Time{}},
	}
	for _, c := range cases {
		in := `[{"n":"/3/0/9","v":1`
		if c.fields != "" {
			in += "," + c.fields
		}
		in += "}]"
		rs, err := testOpts.DecodeJSON([]byte(in), base30, testTypes)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := rs[0].Time; !got.Equal(c.want) {
			t.Errorf("%s: got %v, want %v", in, got, c.want)
		}
	}
}

// The zero DecodeOptions counts relative times from the current time.
func TestDefaultNow(t *testing.T) {
	before := time.Now()
	rs, err := DecodeJSON([]byte(`[{"n":"/3/0/9","v":1,"t":-5}]`), base30, testTypes)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	got := rs[0].Time
	if got.Before(before.Add(-5*time.Second)) || got.After(after.Add(-5*time.Second)) {
		t.Errorf("t:-5 resolved to %v, want between %v and %v", got, before.Add(-5*time.Second), after.Add(-5*time.Second))
	}
}

func TestEncodeLayout(t *testing.T) {
	cases := []struct {
		base string
		rs   []lwm2m.Record
		want string
	}{
		{"/", nil, `[]`},
		{"/", []lwm2m.Record{rec("/3/0/9", lwm2m.Int(1))}, `[{"bn":"/3/0/","n":"9","v":1}]`},
		{"/3/0/7", []lwm2m.Record{rec("/3/0/7/0", lwm2m.Int(1))}, `[{"bn":"/3/0/7/","n":"0","v":1}]`},
		{"/3", []lwm2m.Record{rec("/3/0/9", lwm2m.Int(1)), rec("/3/1/9", lwm2m.Int(2))}, `[{"bn":"/3/","n":"0/9","v":1},{"n":"1/9","v":2}]`},
		{"/", []lwm2m.Record{rec("/3/0/9", lwm2m.Int(1)), rec("/4/0/1", lwm2m.Int(2))}, `[{"n":"/3/0/9","v":1},{"n":"/4/0/1","v":2}]`},
		{"/", []lwm2m.Record{rec("/3/0/9", lwm2m.Bool(true)), rec("/3/0/9", lwm2m.Bool(false))}, `[{"bn":"/3/0/","n":"9","vb":true},{"n":"9","vb":false}]`},
		{"/", []lwm2m.Record{recAt("/3/0/9", lwm2m.Int(1), t0.Add(1500*time.Microsecond))}, `[{"bn":"/3/0/","n":"9","t":1700000000.0015,"v":1}]`},
		{"/", []lwm2m.Record{rec("/3/0/9", lwm2m.Float(1e21))}, `[{"bn":"/3/0/","n":"9","v":1e+21}]`},
	}
	for _, c := range cases {
		got, err := EncodeJSON(lwm2m.MustParsePath(c.base), c.rs)
		if err != nil || string(got) != c.want {
			t.Errorf("EncodeJSON(%s, %v) = %s, %v; want %s", c.base, c.rs, got, err, c.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		name string
		base string
		r    lwm2m.Record
		json bool // fails in JSON only
	}{
		{"outside base", "/3/0", rec("/3/1/9", lwm2m.Int(1)), false},
		{"instance path", "/", lwm2m.Record{Path: lwm2m.MustParsePath("/3/0"), Value: lwm2m.Int(1)}, false},
		{"no value", "/", rec("/3/0/4", lwm2m.None()), false},
		{"time before 1978", "/", recAt("/3/0/9", lwm2m.Int(1), time.Unix(1000, 0)), false},
		{"time after 9999", "/", recAt("/3/0/9", lwm2m.Int(1), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), false},
		{"NaN", "/", rec("/3/0/9", lwm2m.Float(math.NaN())), true},
		{"infinity", "/", rec("/3/0/9", lwm2m.Float(math.Inf(-1))), true},
	}
	for _, c := range cases {
		base := lwm2m.MustParsePath(c.base)
		rs := []lwm2m.Record{rec("/3/0/0", lwm2m.String("ok")), c.r}
		if _, err := EncodeJSON(base, rs); err == nil {
			t.Errorf("%s: EncodeJSON: no error", c.name)
		}
		_, err := EncodeCBOR(base, rs)
		if c.json != (err == nil) {
			t.Errorf("%s: EncodeCBOR: error %v", c.name, err)
		}
	}
}

// CBOR carries NaN and infinities, bit for bit.
func TestCBORSpecialFloats(t *testing.T) {
	rs := []lwm2m.Record{
		rec("/32769/0/2/0", lwm2m.Float(math.Float64frombits(0x7ff8000000000123))),
		rec("/32769/0/2/1", lwm2m.Float(math.Inf(1))),
		rec("/32769/0/2/2", lwm2m.Float(math.Inf(-1))),
		rec("/32769/0/2/3", lwm2m.Float(math.Copysign(0, -1))),
	}
	b, err := EncodeCBOR(base9, rs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCBOR(b, base9, testTypes)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, rs)
}
