package senml

import (
	"runtime"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

var (
	base30   = lwm2m.MustParsePath("/3/0")
	base3303 = lwm2m.MustParsePath("/3303/0")
	base9    = lwm2m.MustParsePath("/32769/0")
)

// errorCase is input that must fail to decode with an error at offset and
// field.
type errorCase struct {
	name   string
	in     string // JSON, or CBOR as hex
	base   lwm2m.Path
	offset int
	field  string
}

func checkErrorCases(t *testing.T, f format, cases []errorCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := f.decode(testOpts, f.input(t, c.in), c.base, testTypes)
			if err == nil {
				t.Fatalf("no error, records %v", rs)
			}
			checkDecodeError(t, c.in, err, f.media, c.offset, c.field)
		})
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	checkErrorCases(t, senmlJSON, []errorCase{
		{"empty", ``, base30, -1, ""},
		{"null", `null`, base30, -1, ""},
		{"object", `{"n":"/3/0/1","v":1}`, base30, -1, ""},
		{"truncated", `[{"n":"/3/0/9","v":1}`, base30, -1, ""},
		{"truncated string", `[{"n":"/3/0/9","v`, base30, -1, ""},
		{"trailing garbage", `[{"n":"/3/0/9","v":1}]x`, base30, -1, ""},
		{"record not object", `[{"n":"/3/0/9","v":1},5]`, base30, -1, ""},
		{"null record", `[{"n":"/3/0/9","v":1},null]`, base30, 1, ""},

		{"bn relative", `[{"bn":"3/0/","n":"9","v":1}]`, base30, 0, "bn"},
		{"bn not a path", `[{"bn":"/3/zero/","n":"9","v":1}]`, base30, 0, "bn"},
		{"bn ID out of range", `[{"n":"/3/0/9","v":1},{"bn":"/3/65535/","n":"9","v":1}]`, lwm2m.Root, 1, "bn"},
		{"bn too deep", `[{"bn":"/3/0/1/2/3/","n":"9","v":1}]`, lwm2m.Root, 0, "bn"},
		{"bn empty segment", `[{"bn":"/3//0/","n":"9","v":1}]`, lwm2m.Root, 0, "bn"},
		{"bn outside base", `[{"bn":"/4/0/","n":"0","v":1}]`, base30, 0, "bn"},
		{"bn not a string", `[{"bn":3,"n":"9","v":1}]`, base30, 0, "bn"},
		{"name runs into bn", `[{"bn":"/3/0/1","n":"2","v":1}]`, base30, 0, "n"},
		{"name double slash", `[{"bn":"/3/0/","n":"/9","v":1}]`, base30, 0, "n"},
		{"name too shallow", `[{"bn":"/3/","n":"0","v":1}]`, lwm2m.Root, 0, "n"},
		{"name too deep", `[{"n":"/3/0/7/0/1","v":1}]`, lwm2m.Root, 0, "n"},
		{"name outside base", `[{"n":"/3/1/9","v":1}]`, base30, 0, "n"},
		{"name leading zero", `[{"n":"/3/0/09","v":1}]`, base30, 0, "n"},
		{"name not a string", `[{"n":9,"v":1}]`, base30, 0, "n"},
		{"no name below instance", `[{"v":1}]`, base30, 0, "n"},

		{"no value", `[{"n":"/3/0/9"}]`, base30, 0, "v"},
		{"sum only", `[{"n":"/3/0/9","s":5}]`, base30, 0, "v"},
		{"two values", `[{"n":"/3/0/9","v":1,"vs":"1"}]`, base30, 0, "vs"},
		{"two values later", `[{"n":"/3/0/0","vs":"a"},{"n":"/3/0/9","vb":true,"vd":"AA"}]`, base30, 1, "vd"},
		{"v string", `[{"n":"/3/0/9","v":"1"}]`, base30, 0, "v"},
		{"v null", `[{"n":"/3/0/9","v":null}]`, base30, 0, "v"},
		{"v out of range", `[{"n":"/3/0/9","v":1e999}]`, base30, 0, "v"},
		{"vs number", `[{"n":"/3/0/0","vs":1}]`, base30, 0, "vs"},
		{"vb number", `[{"n":"/32769/0/4","vb":1}]`, base9, 0, "vb"},
		{"vd number", `[{"n":"/32769/0/5","vd":1}]`, base9, 0, "vd"},
		{"vd bad base64", `[{"n":"/32769/0/5","vd":"*"}]`, base9, 0, "vd"},
		{"vd mixed alphabets", `[{"n":"/32769/0/5","vd":"a-b+"}]`, base9, 0, "vd"},
		{"vlo bad", `[{"n":"/32769/0/7","vlo":"3-0"}]`, base9, 0, "vlo"},
		{"vlo out of range", `[{"n":"/32769/0/7","vlo":"3:65536"}]`, base9, 0, "vlo"},
		{"t string", `[{"n":"/3/0/9","v":1,"t":"now"}]`, base30, 0, "t"},
		{"t out of range", `[{"n":"/3/0/9","v":1,"t":1e300}]`, base30, 0, "t"},
		{"t far past", `[{"n":"/3/0/9","v":1,"t":-1e12}]`, base30, 0, "t"},
		{"t 64-bit unsigned", `[{"n":"/3/0/9","v":1,"t":18446744073709551615}]`, base30, 0, "t"},
		{"bt out of range", `[{"bt":1e300,"n":"/3/0/9","v":1}]`, base30, 0, "bt"},
		{"bt string", `[{"bt":"x","n":"/3/0/9","v":1}]`, base30, 0, "bt"},
		{"bv string", `[{"bv":"x","n":"/3/0/9","v":1}]`, base30, 0, "bv"},
		{"bver too new", `[{"bver":11,"n":"/3/0/9","v":1}]`, base30, 0, "bver"},
		{"bver fraction", `[{"bver":9.5,"n":"/3/0/9","v":1}]`, base30, 0, "bver"},
		{"unit not a string", `[{"n":"/3/0/9","v":1,"u":1}]`, base30, 0, "u"},
		{"must-understand label", `[{"n":"/3/0/9","v":1},{"n":"/3/0/9","v":1,"z_":1,"y_":2}]`, base30, 1, "y_"},

		{"string for integer", `[{"n":"/3/0/9","vs":"100"}]`, base30, 0, "vs"},
		{"fraction for integer", `[{"n":"/3/0/9","v":1.5}]`, base30, 0, "v"},
		{"integer overflow", `[{"n":"/3/0/9","v":9223372036854775808}]`, base30, 0, "v"},
		{"negative unsigned", `[{"n":"/32769/0/1","v":-1}]`, base9, 0, "v"},
		{"fraction for time", `[{"n":"/32769/0/6","v":1700000000.5}]`, base9, 0, "v"},
		{"number for boolean", `[{"n":"/32769/0/4","v":1}]`, base9, 0, "v"},
		{"number for string", `[{"n":"/3/0/0","v":1}]`, base30, 0, "v"},
		{"boolean for string", `[{"n":"/3/0/0","vb":true}]`, base30, 0, "vb"},
		{"data for string", `[{"n":"/3/0/0","vd":"AA"}]`, base30, 0, "vd"},
		{"objlnk for integer", `[{"n":"/3/0/9","vlo":"3:0"}]`, base30, 0, "vlo"},
		{"string for opaque", `[{"n":"/32769/0/5","vs":"AA"}]`, base9, 0, "vs"},
		{"string for objlnk", `[{"n":"/32769/0/7","vs":"3:0"}]`, base9, 0, "vs"},
		{"base value pushes out of range", `[{"bv":9223372036854775807,"n":"/3/0/9","v":1}]`, base30, 0, "v"},
	})
}

func TestDecodeCBORErrors(t *testing.T) {
	checkErrorCases(t, senmlCBOR, []errorCase{
		{"empty", ``, base30, -1, ""},
		{"null", `f6`, base30, -1, ""},
		{"map", `a0`, base30, -1, ""},
		{"truncated array", `82 a2 00 66 2f332f302f39 02 01`, base30, -1, ""},
		{"truncated string", `81 a2 00 66 2f332f30`, base30, -1, ""},
		{"truncated head", `81 a2 00 66 2f332f302f39 02 1a 00`, base30, -1, ""},
		{"trailing bytes", `81 a2 00 66 2f332f302f39 02 01 00`, base30, -1, ""},
		{"record not a map", `82 a2 00 66 2f332f302f39 02 01 05`, base30, -1, ""},
		{"null record", `82 a2 00 66 2f332f302f39 02 01 f6`, base30, 1, ""},
		{"unterminated indefinite", `9f a2 00 66 2f332f302f39 02 01`, base30, -1, ""},
		{"break outside indefinite", `81 ff`, base30, -1, ""},
		{"invalid UTF-8", `81 a2 00 62 c328 02 01`, base30, -1, ""},
		{"duplicate key", `81 a3 00 66 2f332f302f39 02 01 02 02`, base30, -1, ""},
		{"duplicate key non-minimal", `81 a3 00 66 2f332f302f39 02 01 1802 02`, base30, -1, ""},
		{"tag", `81 a2 00 66 2f332f302f39 02 c1 01`, base30, -1, ""},
		{"nesting too deep", `81 a2 00 66 2f332f302f39 02 81 81 81 01`, base30, -1, ""},
		{"nested map value", `81 a2 00 66 2f332f302f39 02 a1 00 a1 00 00`, base30, 0, "v"},
		{"array length 2^32", `9b 0000000100000000 a0`, base30, -1, ""},
		{"array length 2^64-1", `9b ffffffffffffffff`, base30, -1, ""},
		{"array over 65536", `9a 00010001`, base30, -1, ""},
		{"map pairs 2^32", `81 bb 0000000100000000 00`, base30, -1, ""},
		{"map pairs over limit", `81 b8 21 00`, base30, -1, ""},
		{"byte string 2^32", `81 a2 00 66 2f332f302f39 08 5b 0000000100000000 00`, base30, -1, ""},
		{"text string 2^63", `81 a1 00 7b 8000000000000000 00`, base30, -1, ""},

		{"bn relative", `81 a3 21 64 332f302f 00 61 39 02 01`, base30, 0, "bn"},
		{"bn outside base", `81 a3 21 65 2f342f302f 00 61 39 02 01`, base30, 0, "bn"},
		{"bn integer", `81 a3 21 03 00 61 39 02 01`, base30, 0, "bn"},
		{"name too shallow", `81 a2 00 64 2f332f30 02 01`, base30, 0, "n"},
		{"name bytes", `81 a2 00 46 2f332f302f39 02 01`, base30, 0, "n"},
		{"no value", `81 a1 00 66 2f332f302f39`, base30, 0, "v"},
		{"two values", `81 a3 00 66 2f332f302f39 02 01 03 61 31`, base30, 0, "vs"},
		{"v text", `81 a2 00 66 2f332f302f39 02 61 31`, base30, 0, "v"},
		{"v null", `81 a2 00 66 2f332f302f39 02 f6`, base30, 0, "v"},
		{"v below int64", `81 a2 00 66 2f332f302f39 02 3b 8000000000000000`, base30, 0, "v"},
		{"vs integer", `81 a2 00 66 2f332f302f30 03 01`, base30, 0, "vs"},
		{"vb integer", `81 a2 00 6a 2f33323736392f302f34 04 01`, base9, 0, "vb"},
		{"vd text", `81 a2 00 6a 2f33323736392f302f35 08 62 4141`, base9, 0, "vd"},
		{"vlo bytes", `81 a2 00 6a 2f33323736392f302f37 63 766c6f 43 333a30`, base9, 0, "vlo"},
		{"t text", `81 a3 00 66 2f332f302f39 02 01 06 61 30`, base30, 0, "t"},
		{"t NaN", `81 a3 00 66 2f332f302f39 02 01 06 f9 7e00`, base30, 0, "t"},
		{"t infinite", `81 a3 00 66 2f332f302f39 02 01 06 f9 7c00`, base30, 0, "t"},
		{"bt 2^64-1", `81 a3 22 1b ffffffffffffffff 00 66 2f332f302f39 02 01`, base30, 0, "bt"},
		{"must-understand text label", `81 a3 00 66 2f332f302f39 02 01 62 785f 01`, base30, 0, "x_"},
		{"fraction for integer", `81 a2 00 66 2f332f302f39 02 f9 3e00`, base30, 0, "v"},
		{"objlnk for integer", `81 a2 00 66 2f332f302f39 63 766c6f 63 333a30`, base30, 0, "vlo"},
	})
}

// A pack of exactly 65536 records is accepted, one more is refused.
func TestCBORRecordLimit(t *testing.T) {
	one := unhex(t, "a2 00 66 2f332f302f39 02 01")
	pack := func(n int) []byte {
		head, err := encMode.Marshal(make([]struct{}, n)) // array head for n items
		if err != nil {
			t.Fatal(err)
		}
		head = head[:len(head)-n] // drop the n empty maps, keep the head
		return append(head, []byte(strings.Repeat(string(one), n))...)
	}
	rs, err := DecodeCBOR(pack(maxRecords), base30, testTypes)
	if err != nil || len(rs) != maxRecords {
		t.Fatalf("%d records: %d, %v", maxRecords, len(rs), err)
	}
	_, err = DecodeCBOR(pack(maxRecords+1), base30, testTypes)
	checkDecodeError(t, "65537 records", err, lwm2m.FormatSenMLCBOR, -1, "")
}

// Length fields claiming far more than the input holds are refused without
// allocating for them.
func TestCBORHugeLengthsDoNotAllocate(t *testing.T) {
	for _, h := range []string{
		"9b 00000000ffffffff a0", // array of 2^32-1 records
		"9a 00010000 a0",         // 65536 records, one present
		"81 a2 00 66 2f332f302f39 08 5b 00000000ffffffff 00", // 4 GiB byte string
		"81 bb 00000000ffffffff 00 00",                       // 2^32-1 map pairs
	} {
		data := unhex(t, h)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := DecodeCBOR(data, base30, testTypes)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: no error", h)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: allocated %d bytes", h, n)
		}
	}
}
