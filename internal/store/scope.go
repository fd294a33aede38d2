package store

import (
	"context"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
)

// scopeCond returns the SQL condition that keeps the rows whose site
// column col is in sc, adding its parameters with arg: "" for every
// device (no condition), "FALSE" for none. Every query that lists or
// counts devices for a user takes its auth.Scope through here; the zero
// Scope selects nothing.
func scopeCond(sc auth.Scope, col string, arg func(any) string) string {
	if sc.All {
		return ""
	}
	var or []string
	if len(sc.Sites) > 0 {
		ph := make([]string, len(sc.Sites))
		for i, id := range sc.Sites {
			ph[i] = arg(id)
		}
		or = append(or, col+" IN ("+strings.Join(ph, ", ")+")")
	}
	if sc.Unassigned {
		or = append(or, col+" IS NULL")
	}
	switch len(or) {
	case 0:
		return "FALSE"
	case 1:
		return or[0]
	}
	return "(" + strings.Join(or, " OR ") + ")"
}

// whereAll joins conditions with AND into a WHERE clause, skipping empty
// ones; "" when none is left.
func whereAll(conds ...string) string {
	var keep []string
	for _, c := range conds {
		if c != "" {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(keep, " AND ")
}

// argList returns a placeholder factory appending to *args, in the $n
// style both engines accept.
func argList(args *[]any) func(any) string {
	return func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
}

// prefixCols qualifies each column of a list joined by ", " (the *Cols
// constants) with the table alias prefix ("e.").
func prefixCols(prefix, cols string) string {
	return prefix + strings.ReplaceAll(cols, ", ", ", "+prefix)
}

// queryPage runs q, which must end in "LIMIT <limit+1>", and returns its
// first limit rows scanned by scan and whether there were more: one page
// of a keyset-paged list. op names the query in errors.
func queryPage[T any](ctx context.Context, s *Store, op, q string, args []any, limit int,
	scan func(rowScanner) (T, error)) ([]T, bool, error) {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, wrap(op, err)
	}
	out, err := collect(rows, scan)
	if err != nil {
		return nil, false, wrap(op, err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}
