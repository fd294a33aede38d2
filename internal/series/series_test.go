package series

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// reference is the textbook LTTB over a slice, to compare with.
func reference(data []Point, threshold int) []Point {
	if threshold >= len(data) || threshold < 3 {
		return slices.Clone(data)
	}
	out := []Point{data[0]}
	every := float64(len(data)-2) / float64(threshold-2)
	a := 0
	for i := 0; i < threshold-2; i++ {
		start := int(math.Floor(float64(i)*every)) + 1
		end := int(math.Floor(float64(i+1)*every)) + 1
		nstart, nend := end, min(int(math.Floor(float64(i+2)*every))+1, len(data))
		if i == threshold-3 {
			nstart, nend = len(data)-1, len(data)
		}
		var ax, ay float64
		for _, p := range data[nstart:nend] {
			ax += p.X
			ay += p.Y
		}
		ax /= float64(nend - nstart)
		ay /= float64(nend - nstart)
		best, area := start, -1.0
		for j := start; j < end; j++ {
			s := math.Abs((data[a].X-ax)*(data[j].Y-data[a].Y) - (data[a].X-data[j].X)*(ay-data[a].Y))
			if s > area {
				best, area = j, s
			}
		}
		out = append(out, data[best])
		a = best
	}
	return append(out, data[len(data)-1])
}

func wave(n int) []Point {
	r := rand.New(rand.NewPCG(1, 2))
	pts := make([]Point, n)
	for i := range pts {
		pts[i] = Point{float64(i) * 1000, math.Sin(float64(i)/50)*10 + r.NormFloat64()}
	}
	return pts
}

func TestLTTBMatchesReference(t *testing.T) {
	for _, c := range []struct{ n, threshold int }{{10, 5}, {100, 10}, {1000, 100}, {1001, 37}, {5000, 800}, {7, 3}} {
		pts := wave(c.n)
		got, want := LTTB(pts, c.threshold), reference(pts, c.threshold)
		if !slices.Equal(got, want) {
			t.Errorf("n=%d threshold=%d: got %d points, want %d; differ", c.n, c.threshold, len(got), len(want))
		}
		if len(got) != c.threshold {
			t.Errorf("n=%d threshold=%d: %d points", c.n, c.threshold, len(got))
		}
	}
}

func TestLTTBSmallAndEdges(t *testing.T) {
	if got := LTTB(nil, 10); len(got) != 0 {
		t.Errorf("empty: %v", got)
	}
	one := []Point{{1, 2}}
	if got := LTTB(one, 10); !slices.Equal(got, one) {
		t.Errorf("one: %v", got)
	}
	pts := wave(50)
	if got := LTTB(pts, 50); !slices.Equal(got, pts) {
		t.Error("n == threshold: not all points")
	}
	if got := LTTB(pts, 1); len(got) != 3 || got[0] != pts[0] || got[2] != pts[49] {
		t.Errorf("threshold 1 is 3: %v", got)
	}
	// A spike survives.
	flat := make([]Point, 10000)
	for i := range flat {
		flat[i] = Point{float64(i), 0}
	}
	flat[4321].Y = 100
	if got := LTTB(flat, 100); !slices.Contains(got, flat[4321]) {
		t.Error("the spike was dropped")
	}
}

func TestDownsamplerCountOff(t *testing.T) {
	pts := wave(1000)
	// Fewer points than announced: a valid series, first and last kept,
	// X increasing.
	d := NewDownsampler(2000, 100)
	for _, p := range pts {
		d.Add(p)
	}
	got := d.Result()
	if got[0] != pts[0] || got[len(got)-1] != pts[999] || len(got) > 100 {
		t.Errorf("fewer: %d points, ends %v %v", len(got), got[0], got[len(got)-1])
	}
	// More than announced.
	d = NewDownsampler(500, 100)
	for _, p := range pts {
		d.Add(p)
	}
	got = d.Result()
	if got[0] != pts[0] || got[len(got)-1] != pts[999] || len(got) > 100 {
		t.Errorf("more: %d points", len(got))
	}
	for _, g := range [][]Point{got} {
		for i := 1; i < len(g); i++ {
			if g[i].X <= g[i-1].X {
				t.Fatalf("not in X order at %d", i)
			}
		}
	}
}

// BenchmarkLTTB: 1,000,000 points to 1,000.
func BenchmarkLTTB(b *testing.B) {
	pts := wave(1_000_000)
	b.ResetTimer()
	for b.Loop() {
		if got := LTTB(pts, 1000); len(got) != 1000 {
			b.Fatal(len(got))
		}
	}
}
