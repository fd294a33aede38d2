package objects

import (
	"os"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func BenchmarkTypeOf(b *testing.B) {
	r := Default()
	p := lwm2m.NewPath(3303, 0, 5700)
	for b.Loop() {
		if _, ok := r.TypeOf(p); !ok {
			b.Fatal("unknown")
		}
	}
}

func BenchmarkDefault(b *testing.B) {
	for b.Loop() {
		Default()
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/good.xml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("good.xml", data); err != nil {
			b.Fatal(err)
		}
	}
}
