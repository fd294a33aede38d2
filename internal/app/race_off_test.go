//go:build !race

package app

// raceDetector reports whether the tests run under the race detector,
// which makes the server several times slower.
const raceDetector = false
