// Package series downsamples numeric time series for charts with
// Largest-Triangle-Three-Buckets (LTTB, Sveinn Steinarsson 2013): of n
// points it keeps the first, the last, and one point per bucket in
// between, the one forming the largest triangle with the point kept from
// the previous bucket and the average of the next bucket, so that peaks
// and troughs survive.
//
// The Downsampler takes the points one at a time, in X order, given their
// count up front: it holds two buckets, never the whole series, so a
// caller can stream millions of rows from a database through it. It is
// pure: no I/O, no clock.
package series

import "math"

// Point is one sample: X (e.g. unix milliseconds) and Y.
type Point struct{ X, Y float64 }

// Downsampler reduces a stream of n points to at most threshold points by
// LTTB. Add the points in X order, then call Result. A Downsampler is for
// one goroutine and one series.
type Downsampler struct {
	n, threshold int
	all          bool // n <= threshold: keep every point
	k            int  // points added
	out          []Point
	pending      Point // the latest point, held back: it may be the last
	hasPending   bool
	prev, cur    []Point // the bucket awaiting selection, the bucket filling
	curBucket    int
	next         int   // the first index of bucket curBucket+1
	a            Point // the point selected from the previous bucket
}

// NewDownsampler returns a Downsampler of a series of n points to at most
// threshold points (a threshold below 3 is taken as 3). Should more than n
// points come, the extra ones join the last bucket; should fewer come, the
// result is still a valid downsampling of those that came.
func NewDownsampler(n, threshold int) *Downsampler {
	threshold = max(threshold, 3)
	d := &Downsampler{n: n, threshold: threshold, all: n <= threshold, curBucket: -1}
	if d.all {
		d.out = make([]Point, 0, max(n, 0))
	} else {
		d.out = make([]Point, 0, threshold)
	}
	return d
}

// Add adds the next point.
func (d *Downsampler) Add(p Point) {
	if d.hasPending {
		d.place(d.pending, d.k-1)
	}
	d.pending, d.hasPending = p, true
	d.k++
}

// bucket is the bucket of the point of index i in [1, n-2], i at least
// that of the previous call: bucket b starts at index
// floor(b*(n-2)/(threshold-2))+1, as in the paper's reference code.
func (d *Downsampler) bucket(i int) int {
	if d.curBucket < 0 {
		d.curBucket, d.next = 0, d.start(1)
	}
	b := d.curBucket
	for b < d.threshold-3 && i >= d.next {
		b++
		d.next = d.start(b + 1)
	}
	return b
}

func (d *Downsampler) start(b int) int {
	return int(math.Floor(float64(b)*float64(d.n-2)/float64(d.threshold-2))) + 1
}

func (d *Downsampler) place(p Point, i int) {
	if d.all {
		d.out = append(d.out, p)
		return
	}
	if i == 0 {
		d.out = append(d.out, p)
		d.a = p
		return
	}
	b := d.bucket(i)
	if b != d.curBucket && len(d.cur) > 0 {
		d.selectFrom(average(d.cur))
		d.prev, d.cur = d.cur, d.prev[:0]
	}
	d.curBucket = b
	d.cur = append(d.cur, p)
}

// selectFrom keeps the point of the previous bucket forming the largest
// triangle with the last kept point and c.
func (d *Downsampler) selectFrom(c Point) {
	if len(d.prev) == 0 {
		return
	}
	best, area := d.prev[0], -1.0
	for _, p := range d.prev {
		// Twice the triangle's area; the factor does not change the order.
		s := (d.a.X-c.X)*(p.Y-d.a.Y) - (d.a.X-p.X)*(c.Y-d.a.Y)
		if s < 0 {
			s = -s
		}
		if s > area {
			best, area = p, s
		}
	}
	d.out = append(d.out, best)
	d.a = best
}

func average(ps []Point) Point {
	var x, y float64
	for _, p := range ps {
		x += p.X
		y += p.Y
	}
	n := float64(len(ps))
	return Point{x / n, y / n}
}

// Result returns the downsampled series, in X order. Call it once, after
// the last Add.
func (d *Downsampler) Result() []Point {
	if !d.hasPending {
		return d.out
	}
	last := d.pending
	d.hasPending = false
	if d.all || d.k == 1 {
		return append(d.out, last)
	}
	if len(d.cur) > 0 {
		d.selectFrom(average(d.cur))
		d.prev, d.cur = d.cur, nil
		d.selectFrom(last)
	}
	return append(d.out, last)
}

// LTTB downsamples pts (in X order) to at most threshold points.
func LTTB(pts []Point, threshold int) []Point {
	d := NewDownsampler(len(pts), threshold)
	for _, p := range pts {
		d.Add(p)
	}
	return d.Result()
}
