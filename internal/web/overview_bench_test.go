package web

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

var overviewFull = flag.Bool("overview-full", false,
	"BenchmarkOverview at full size: 100,000 devices and 3,000,000 values (default: 2,000 and 60,000)")

// BenchmarkOverview measures GET / through the whole handler (session,
// fleet counts, queue depth, the three value charts, firmware versions,
// recent events, template) in SQLite, for a global administrator and for
// a Site User who sees a third of the fleet. The values (spread over 30
// days, inserted in 10,000-value batches through the ingest path, so the
// value_count trigger runs) and one Firmware Version per device are in
// place first. It reports p50 and p95 of the server time. Full size:
//
//	go test -run '^$' -bench BenchmarkOverview -benchtime 200x ./internal/web/ -overview-full
func BenchmarkOverview(b *testing.B) {
	devices, values := 2_000, 60_000
	if *overviewFull {
		devices, values = 100_000, 3_000_000
	}
	e := newEnv(b, nil)
	ctx := context.Background()
	now := e.clk.Now()
	ms := now.UnixMilli()
	tx, err := e.st.WriteDB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range devices {
		var site any
		if i%3 == 0 {
			site = e.site.ID
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO endpoint (name, site_id, online, registered_at, last_seen, address, lifetime,
			binding, lwm2m_version, queue_mode, object_links, transport, firmware_version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $4, '192.0.2.1:5683', 300, 'U', '1.1', FALSE, '</3/0>,</5/0>', 'udp', '', $4, $4)`,
			fmt.Sprintf("urn:imei:%015d", i), site, i%4 != 0, ms); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	batch := make([]store.ResourceValue, 0, 10_000)
	flush := func() {
		if err := e.st.InsertResources(ctx, batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	versions := []string{"1.0.0", "1.0.1", "1.1.0", "2.0.0-rc1", "2.0.0"}
	for i := range devices {
		batch = append(batch, store.ResourceValue{EndpointID: int64(i + 1), Path: lwm2m.NewPath(3, 0, 3),
			Value: lwm2m.String(versions[i*7%len(versions)]), ReceivedAt: now.Add(-time.Duration(i) * time.Second)})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	span := 30 * 24 * time.Hour
	for i := range values {
		// Denser towards now: half the values in the last 2 days.
		age := time.Duration(i) * (span / time.Duration(values))
		if i%2 == 0 {
			age /= 15
		}
		batch = append(batch, store.ResourceValue{EndpointID: int64(i%devices + 1), Path: lwm2m.NewPath(3303, 0, 5700),
			Value: lwm2m.Float(float64(i % 40)), ReceivedAt: now.Add(-age)})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	b.Logf("%d devices, %d values inserted in %v", devices, values+devices, time.Since(start).Round(time.Millisecond))
	if _, err := e.st.WriteDB().ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	h := e.w.Handler()
	for _, user := range []string{"admin", "olive"} {
		cookies := e.loggedIn(b, user).c.Jar.Cookies(mustParse(e.srv.URL))
		b.Run(user, func(b *testing.B) { benchPage(b, h, cookies, "/", false) })
	}
}
