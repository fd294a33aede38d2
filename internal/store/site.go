package store

import (
	"context"
	"fmt"
	"time"
)

// Site is a tenant: a group of endpoints that users see through their
// membership.
type Site struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

const siteCols = "id, name, created_at"

func scanSite(r rowScanner) (Site, error) {
	var st Site
	var created int64
	if err := r.Scan(&st.ID, &st.Name, &created); err != nil {
		return Site{}, err
	}
	st.CreatedAt = fromMillis(created)
	return st, nil
}

// CreateSite adds a site; a name already taken is ErrConflict.
func (s *Store) CreateSite(ctx context.Context, name string) (Site, error) {
	if name == "" {
		return Site{}, fmt.Errorf("store: create site: empty name")
	}
	st, err := scanSite(s.wdb.QueryRowContext(ctx,
		"INSERT INTO site (name, created_at) VALUES ($1, $2) RETURNING "+siteCols,
		name, millis(s.now())))
	return st, wrap(fmt.Sprintf("create site %q", name), err)
}

// GetSite returns the site with the given id.
func (s *Store) GetSite(ctx context.Context, id int64) (Site, error) {
	st, err := scanSite(s.rdb.QueryRowContext(ctx, "SELECT "+siteCols+" FROM site WHERE id = $1", id))
	return st, wrap(fmt.Sprintf("get site %d", id), err)
}

// GetSiteByName returns the site with the given name.
func (s *Store) GetSiteByName(ctx context.Context, name string) (Site, error) {
	st, err := scanSite(s.rdb.QueryRowContext(ctx, "SELECT "+siteCols+" FROM site WHERE name = $1", name))
	return st, wrap(fmt.Sprintf("get site %q", name), err)
}

// ListSites returns all sites ordered by name.
func (s *Store) ListSites(ctx context.Context) ([]Site, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+siteCols+" FROM site ORDER BY name")
	if err != nil {
		return nil, wrap("list sites", err)
	}
	out, err := collect(rows, scanSite)
	return out, wrap("list sites", err)
}

// RenameSite changes a site's name; a name already taken is ErrConflict.
func (s *Store) RenameSite(ctx context.Context, id int64, name string) (Site, error) {
	if name == "" {
		return Site{}, fmt.Errorf("store: rename site %d: empty name", id)
	}
	st, err := scanSite(s.wdb.QueryRowContext(ctx,
		"UPDATE site SET name = $2 WHERE id = $1 RETURNING "+siteCols, id, name))
	return st, wrap(fmt.Sprintf("rename site %d", id), err)
}

// DeleteSite removes a site and its memberships; its endpoints remain,
// without a site.
func (s *Store) DeleteSite(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete site %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM site WHERE id = $1", id)))
}
