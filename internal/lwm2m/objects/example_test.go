package objects_test

import (
	"fmt"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

func ExampleCatalog_TypeOf() {
	reg := objects.Default()
	var typeOf lwm2m.TypeFunc = reg.TypeOf // what the TLV and text decoders take
	for _, p := range []string{"/3/0/9", "/3303/0/5700", "/3/0/7/0", "/3/0"} {
		t, ok := typeOf(lwm2m.MustParsePath(p))
		fmt.Println(p, t, ok)
	}
	// Output:
	// /3/0/9 integer true
	// /3303/0/5700 float true
	// /3/0/7/0 integer true
	// /3/0 none false
}
