package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// ResourceValue is one value of one resource (or resource instance) of one
// endpoint, as stored in the history.
type ResourceValue struct {
	EndpointID int64
	Path       lwm2m.Path // depth 3 (resource) or 4 (resource instance)
	Value      lwm2m.Value
	DeviceTime time.Time // the device's timestamp; zero: none
	ReceivedAt time.Time // when the server received it; zero on insert means now
	EventID    int64     // the event that carried it; 0: none
}

// How values map to columns (see the migration): value_type is
// lwm2m.Type.String() and exactly one of value_int, value_float,
// value_text, value_blob holds the value. Strings that are not valid UTF-8
// or contain NUL go to value_blob. Unsigned values are stored as the
// int64 with the same bits, so all of 0..2^64-1 round-trip. NaN is stored as
// NULL and read back as math.NaN(); SQLite reads -0.0 back as +0.0.
type encodedValue struct {
	typ   string
	int   any
	float any
	text  any
	blob  any
}

func encodeValue(v lwm2m.Value) (encodedValue, error) {
	e := encodedValue{typ: v.Type().String()}
	switch v.Type() {
	case lwm2m.TypeNone:
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		e.int = v.IntValue()
	case lwm2m.TypeUnsigned:
		e.int = int64(v.UintValue())
	case lwm2m.TypeBoolean:
		if v.BoolValue() {
			e.int = int64(1)
		} else {
			e.int = int64(0)
		}
	case lwm2m.TypeFloat:
		if f := v.FloatValue(); !math.IsNaN(f) {
			e.float = f
		}
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		if str := v.StringValue(); utf8.ValidString(str) && strings.IndexByte(str, 0) < 0 {
			e.text = str
		} else {
			e.blob = []byte(str) // PostgreSQL text holds neither NUL nor invalid UTF-8
		}
	case lwm2m.TypeObjlnk:
		e.text = v.ObjlnkValue().String()
	case lwm2m.TypeOpaque:
		b := v.Opaque()
		if b == nil {
			b = []byte{}
		}
		e.blob = b
	default:
		return encodedValue{}, fmt.Errorf("unknown value type %s", v.Type())
	}
	return e, nil
}

func decodeValue(typ string, i sql.NullInt64, f sql.NullFloat64, text sql.NullString, blob []byte) (lwm2m.Value, error) {
	t, err := lwm2m.ParseType(typ)
	if err != nil || t.String() != typ {
		return lwm2m.Value{}, fmt.Errorf("unknown value_type %q", typ)
	}
	need := func(ok bool, col string) error {
		if !ok {
			return fmt.Errorf("%s value without %s", typ, col)
		}
		return nil
	}
	switch t {
	case lwm2m.TypeNone:
		return lwm2m.None(), nil
	case lwm2m.TypeInteger:
		return lwm2m.Int(i.Int64), need(i.Valid, "value_int")
	case lwm2m.TypeTime:
		return lwm2m.TimeUnix(i.Int64), need(i.Valid, "value_int")
	case lwm2m.TypeUnsigned:
		return lwm2m.Uint(uint64(i.Int64)), need(i.Valid, "value_int")
	case lwm2m.TypeBoolean:
		return lwm2m.Bool(i.Int64 != 0), need(i.Valid, "value_int")
	case lwm2m.TypeFloat:
		if !f.Valid {
			return lwm2m.Float(math.NaN()), nil
		}
		return lwm2m.Float(f.Float64), nil
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		str := text.String
		if !text.Valid {
			if blob == nil {
				return lwm2m.Value{}, fmt.Errorf("%s value without value_text or value_blob", typ)
			}
			str = string(blob)
		}
		if t == lwm2m.TypeCorelnk {
			return lwm2m.Corelnk(str), nil
		}
		return lwm2m.String(str), nil
	case lwm2m.TypeObjlnk:
		if err := need(text.Valid, "value_text"); err != nil {
			return lwm2m.Value{}, err
		}
		l, err := lwm2m.ParseObjLink(text.String)
		if err != nil {
			return lwm2m.Value{}, err
		}
		return lwm2m.Objlnk(l), nil
	case lwm2m.TypeOpaque:
		if blob == nil {
			blob = []byte{}
		}
		return lwm2m.Opaque(blob), nil
	}
	return lwm2m.Value{}, fmt.Errorf("unknown value_type %q", typ)
}

// resourceCols are the columns InsertResources writes, in order; the same
// columns make up resource_latest.
const resourceCols = "endpoint_id, path, object_id, instance_id, resource_id, resource_instance, " +
	"value_type, value_int, value_float, value_text, value_blob, device_time, received_at, event_id"

const resourceNCols = 14

type resourceRow struct {
	args [resourceNCols]any
	key  latestKey
	recv int64
	dev  int64 // 0 when none
}

type latestKey struct {
	endpoint int64
	path     lwm2m.Path
}

func (s *Store) encodeResourceRows(vals []ResourceValue) ([]resourceRow, error) {
	now := s.now()
	rows := make([]resourceRow, len(vals))
	for i, v := range vals {
		if v.EndpointID <= 0 {
			return nil, fmt.Errorf("value %d (%s): no endpoint", i, v.Path)
		}
		if d := v.Path.Depth(); d != 3 && d != 4 {
			return nil, fmt.Errorf("value %d: path %s is not a resource or resource instance", i, v.Path)
		}
		ev, err := encodeValue(v.Value)
		if err != nil {
			return nil, fmt.Errorf("value %d (%s): %w", i, v.Path, err)
		}
		recv := v.ReceivedAt
		if recv.IsZero() {
			recv = now
		}
		var ri any
		if v.Path.IsResourceInstance() {
			ri = int64(v.Path.ResourceInstance())
		}
		r := &rows[i]
		r.args = [resourceNCols]any{
			v.EndpointID, v.Path.String(), int64(v.Path.Object()), int64(v.Path.Instance()),
			int64(v.Path.Resource()), ri, ev.typ, ev.int, ev.float, ev.text, ev.blob,
			nullMillis(v.DeviceTime), millis(recv), nullID(v.EventID),
		}
		r.key = latestKey{v.EndpointID, v.Path}
		r.recv = millis(recv)
		if !v.DeviceTime.IsZero() {
			r.dev = millis(v.DeviceTime)
		}
	}
	return rows, nil
}

// InsertResources stores a batch of values in one transaction: all of them
// or none. It appends them to the history and updates the latest value of
// each (endpoint, path) when a value is at least as recent (by received
// time, then device time) as the stored latest one; within the batch a
// later value of the same path wins a tie.
func (s *Store) InsertResources(ctx context.Context, vals []ResourceValue) error {
	if len(vals) == 0 {
		return nil
	}
	rows, err := s.encodeResourceRows(vals)
	if err != nil {
		return fmt.Errorf("store: insert resources: %w", err)
	}
	defer s.prepareMissing(ctx)
	return wrap("insert resources", s.inTx(ctx, func(tx *sql.Tx) error {
		return s.insertResourceRows(ctx, tx, rows)
	}))
}

func (s *Store) insertResourceRows(ctx context.Context, tx *sql.Tx, rows []resourceRow) error {
	args := make([]any, 0, min(len(rows), insertChunk)*resourceNCols)
	for chunk := range chunks(s, rows) {
		args = args[:0]
		for i := range chunk {
			args = append(args, chunk[i].args[:]...)
		}
		if _, err := s.execBulk(ctx, tx, bulkResource, len(chunk), args); err != nil {
			return err
		}
	}
	for chunk := range chunks(s, latestRows(rows)) {
		args = args[:0]
		for _, r := range chunk {
			args = append(args, r.args[:]...)
		}
		if _, err := s.execBulk(ctx, tx, bulkLatest, len(chunk), args); err != nil {
			return err
		}
	}
	return nil
}

// latestRows keeps the most recent row of each (endpoint, path) of a
// batch, in first-seen order: a multi-row upsert must not touch a key
// twice.
func latestRows(rows []resourceRow) []*resourceRow {
	idx := make(map[latestKey]int, len(rows))
	out := make([]*resourceRow, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		j, ok := idx[r.key]
		if !ok {
			idx[r.key] = len(out)
			out = append(out, r)
			continue
		}
		if o := out[j]; r.recv > o.recv || (r.recv == o.recv && r.dev >= o.dev) {
			out[j] = r
		}
	}
	return out
}

const valueCols = "path, value_type, value_int, value_float, value_text, value_blob, device_time, received_at, event_id"

func scanResourceValue(endpointID int64) func(rowScanner) (ResourceValue, error) {
	return func(r rowScanner) (ResourceValue, error) {
		var path, typ string
		var i, dev, event sql.NullInt64
		var f sql.NullFloat64
		var text sql.NullString
		var blob []byte
		var recv int64
		if err := r.Scan(&path, &typ, &i, &f, &text, &blob, &dev, &recv, &event); err != nil {
			return ResourceValue{}, err
		}
		p, err := lwm2m.ParsePath(path)
		if err != nil {
			return ResourceValue{}, err
		}
		v, err := decodeValue(typ, i, f, text, blob)
		if err != nil {
			return ResourceValue{}, fmt.Errorf("%s: %w", path, err)
		}
		return ResourceValue{
			EndpointID: endpointID, Path: p, Value: v,
			DeviceTime: fromNullMillis(dev), ReceivedAt: fromMillis(recv), EventID: event.Int64,
		}, nil
	}
}

// LatestResources returns the latest value of every path of the endpoint
// under prefix (lwm2m.Root for all), ordered by path.
func (s *Store) LatestResources(ctx context.Context, endpointID int64, prefix lwm2m.Path) ([]ResourceValue, error) {
	op := fmt.Sprintf("latest resources of endpoint %d under %s", endpointID, prefix)
	q := "SELECT " + valueCols + " FROM resource_latest WHERE endpoint_id = $1"
	args := []any{endpointID}
	for i, col := range []string{"object_id", "instance_id", "resource_id", "resource_instance"}[:prefix.Depth()] {
		args = append(args, int64(prefix.ID(i)))
		q += fmt.Sprintf(" AND %s = $%d", col, len(args))
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanResourceValue(endpointID))
	if err != nil {
		return nil, wrap(op, err)
	}
	sortValues(out)
	return out, nil
}

func sortValues(vs []ResourceValue) {
	slices.SortStableFunc(vs, func(a, b ResourceValue) int { return a.Path.Compare(b.Path) })
}

// ResourceHistory returns the values of one path of the endpoint received
// in [from, to), newest first, at most limit (<= 0: 1000) of them. A zero
// from or to leaves that end open.
func (s *Store) ResourceHistory(ctx context.Context, endpointID int64, path lwm2m.Path, from, to time.Time, limit int) ([]ResourceValue, error) {
	op := fmt.Sprintf("history of %s of endpoint %d", path, endpointID)
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !from.IsZero() {
		lo = millis(from)
	}
	if !to.IsZero() {
		hi = millis(to)
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+valueCols+` FROM resource
		WHERE endpoint_id = $1 AND path = $2 AND received_at >= $3 AND received_at < $4
		ORDER BY received_at DESC, id DESC LIMIT $5`,
		endpointID, path.String(), lo, hi, limitOr(limit, 1000))
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanResourceValue(endpointID))
	return out, wrap(op, err)
}
