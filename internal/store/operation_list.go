package store

import (
	"context"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/auth"
)

// OperationPage selects one page of the operation queue across endpoints
// for PageOperations: of the endpoints in Scope whose names start with
// Prefix, of Status ("" for any), with ids below Before (keyset paging: 0
// starts at the newest), at most Limit (<= 0: 50, at most 500).
type OperationPage struct {
	// Scope is the devices whose operations the page may show; the zero
	// Scope shows none, auth.Everything all.
	Scope  auth.Scope
	Status OperationStatus
	Prefix string
	Before int64
	Limit  int
}

// ListedOperation is an operation with its endpoint's name and the name
// of the user who queued it ("" for the system or a removed user).
type ListedOperation struct {
	Operation
	Endpoint     string
	QueuedByName string
}

// PageOperations returns one page of the operations p selects, newest
// first, and whether more follow. It walks the primary key (or the
// (status, id) index when Status is set) backwards from Before, so its
// cost grows with the page and with the operations skipped by the scope
// and prefix filters, not with the queue's length.
func (s *Store) PageOperations(ctx context.Context, p OperationPage) ([]ListedOperation, bool, error) {
	limit := min(limitOr(p.Limit, 50), 500)
	var args []any
	arg := argList(&args)
	var where []string
	if c := scopeCond(p.Scope, "e.site_id", arg); c != "" {
		where = append(where, c)
	}
	if p.Status != "" {
		where = append(where, "o.status = "+arg(string(p.Status)))
	}
	if p.Prefix != "" {
		where = append(where, "e.name >= "+arg(p.Prefix), "e.name < "+arg(p.Prefix+string(utf8.MaxRune)))
	}
	if p.Before > 0 {
		where = append(where, "o.id < "+arg(p.Before))
	}
	q := "SELECT " + prefixCols("o.", operationCols) + ", e.name, COALESCE(u.username, '')" +
		" FROM endpoint_operation o JOIN endpoint e ON e.id = o.endpoint_id LEFT JOIN users u ON u.id = o.queued_by" +
		whereAll(where...) + " ORDER BY o.id DESC LIMIT " + arg(limit+1)
	return queryPage(ctx, s, "page operations", q, args, limit, func(r rowScanner) (ListedOperation, error) {
		var l ListedOperation
		var err error
		l.Operation, err = scanOperation(withExtra(r, &l.Endpoint, &l.QueuedByName))
		return l, err
	})
}

// withExtra returns a rowScanner that scans the columns a scan function
// knows, then the extra ones into extra.
func withExtra(r rowScanner, extra ...any) rowScanner { return extraScanner{r, extra} }

type extraScanner struct {
	r     rowScanner
	extra []any
}

func (x extraScanner) Scan(dest ...any) error { return x.r.Scan(append(dest, x.extra...)...) }
