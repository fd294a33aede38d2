package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderEvent     = "X-Flownexus-Event"     // the event's topic
	HeaderDelivery  = "X-Flownexus-Delivery"  // the delivery's id: the same on every attempt
	HeaderTimestamp = "X-Flownexus-Timestamp" // when it was signed, in unix seconds
	HeaderSignature = "X-Flownexus-Signature" // "sha256=" + Sign
)

// Sign returns the signature of a delivery: the lower-case hex
// HMAC-SHA256, keyed with the webhook's secret, of the decimal timestamp
// (HeaderTimestamp), a dot and the request body, prefixed "sha256=".
func Sign(secret []byte, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify is what a receiver does with a delivery: it reports whether
// signature (HeaderSignature) is Sign of secret, timestamp
// (HeaderTimestamp) and body, and timestamp is within tolerance of now
// (replays of old deliveries fail).
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || !strings.HasPrefix(signature, "sha256=") {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature))
}
