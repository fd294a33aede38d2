package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// ValueBucketWidth is the finest bucket ValueCounts can count in: the
// width of value_count's rows.
const ValueBucketWidth = 5 * time.Minute

// Bucket is the number of values received from Start for the bucket's
// width.
type Bucket struct {
	Start time.Time
	Count int64
}

// ValueCounts counts the values received from the endpoints in sc since
// since, in buckets of width (a whole multiple of ValueBucketWidth,
// aligned on the Unix epoch: hours and UTC days start at their whole
// hour and midnight). It returns every bucket from the one holding since
// to the one holding until, empty ones with Count 0. It reads the
// value_count rollup (one row per site and 5 minutes), so its cost does
// not grow with the values stored; a value counts for the site its
// endpoint was in when it arrived.
func (s *Store) ValueCounts(ctx context.Context, sc auth.Scope, since, until time.Time, width time.Duration) ([]Bucket, error) {
	if width < ValueBucketWidth || width%ValueBucketWidth != 0 {
		return nil, fmt.Errorf("store: value counts: bucket width %v is not a multiple of %v", width, ValueBucketWidth)
	}
	w := width.Milliseconds()
	from := millis(since) - floorMod(millis(since), w)
	to := millis(until) - floorMod(millis(until), w)
	if to < from {
		return nil, nil
	}
	var args []any
	arg := argList(&args)
	wa := arg(w)
	q := "SELECT bucket - bucket % " + wa + ", CAST(SUM(n) AS BIGINT) FROM value_count" +
		whereAll("bucket >= "+arg(from), "bucket < "+arg(to+w), scopeCond(sc, "NULLIF(site_id, 0)", arg)) +
		" GROUP BY bucket - bucket % " + wa
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("value counts", err)
	}
	defer rows.Close()
	counts := map[int64]int64{}
	for rows.Next() {
		var b, n int64
		if err := rows.Scan(&b, &n); err != nil {
			return nil, wrap("value counts", err)
		}
		counts[b] += n
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("value counts", err)
	}
	out := make([]Bucket, 0, (to-from)/w+1)
	for b := from; b <= to; b += w {
		out = append(out, Bucket{Start: fromMillis(b), Count: counts[b]})
	}
	return out, nil
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// VersionCount is how many devices run a firmware version.
type VersionCount struct {
	Version string
	Devices int
}

// FirmwareVersionCounts counts the endpoints in sc by firmware version,
// most devices first (then by version): the latest Firmware Version
// (/3/0/3) an endpoint reported or, when it reported none, the version a
// finished update confirmed (its firmware_version column); endpoints with
// neither are not counted. Partial indexes of just those values serve
// both parts.
func (s *Store) FirmwareVersionCounts(ctx context.Context, sc auth.Scope) ([]VersionCount, error) {
	counts := map[string]int{}
	add := func(q string, args []any) error {
		rows, err := s.rdb.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			var n int
			if err := rows.Scan(&v, &n); err != nil {
				return err
			}
			counts[v] += n
		}
		return rows.Err()
	}
	var args []any
	cond := scopeCond(sc, "e.site_id", argList(&args))
	// Every device: the partial index. Some sites: their endpoints, then
	// each one's /3/0/3 by primary key, so that a small site costs little.
	q := "SELECT rl.value_text, count(*) FROM resource_latest rl" +
		" WHERE rl.object_id = 3 AND rl.instance_id = 0 AND rl.resource_id = 3 AND rl.value_text IS NOT NULL GROUP BY rl.value_text"
	if cond != "" {
		q = "SELECT rl.value_text, count(*) FROM endpoint e JOIN resource_latest rl ON rl.endpoint_id = e.id AND rl.path = '/3/0/3'" +
			whereAll("rl.value_text IS NOT NULL", cond) + " GROUP BY rl.value_text"
	}
	if err := add(q, args); err != nil {
		return nil, wrap("firmware version counts", err)
	}
	// The partial index of the versions updates confirmed holds few
	// rows: "+e.site_id" keeps the planner from walking a site's endpoints
	// by the site index instead.
	var args2 []any
	if err := add("SELECT e.firmware_version, count(*) FROM endpoint e"+
		whereAll("e.firmware_version <> ''", scopeCond(sc, "+e.site_id", argList(&args2)), "NOT EXISTS (SELECT 1 FROM resource_latest rl WHERE rl.endpoint_id = e.id AND rl.path = '/3/0/3')")+
		" GROUP BY e.firmware_version", args2); err != nil {
		return nil, wrap("firmware version counts", err)
	}
	out := make([]VersionCount, 0, len(counts))
	for v, n := range counts {
		out = append(out, VersionCount{Version: v, Devices: n})
	}
	slices.SortFunc(out, func(a, b VersionCount) int {
		return cmp.Or(cmp.Compare(b.Devices, a.Devices), cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}
