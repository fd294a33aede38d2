package store

import (
	"context"
	"fmt"
)

// GetOnlineEndpointByAddress returns the online endpoint whose plain-CoAP
// registration was last heard from addr ("ip:port"), the most recently
// seen one when several claim it (a NAT gave the address to another
// device); ErrNotFound when none. A Send over plain CoAP names no
// registration: this finds its device after a restart.
func (s *Store) GetOnlineEndpointByAddress(ctx context.Context, addr string) (Endpoint, error) {
	e, err := scanEndpoint(s.rdb.QueryRowContext(ctx, "SELECT "+endpointCols+
		" FROM endpoint WHERE address = $1 AND online AND transport = 'udp'"+
		" ORDER BY last_seen DESC LIMIT 1", addr))
	return e, wrap(fmt.Sprintf("get online endpoint at %q", addr), err)
}
