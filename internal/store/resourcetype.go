package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// ResourceType describes a resource of an object, as an object definition
// (OMA DDF) gives it.
type ResourceType struct {
	ObjectID   uint16
	ResourceID uint16
	Name       string
	DataType   lwm2m.Type
	Units      string
	Multiple   bool
	Operations string // "R", "W", "RW", "E" or ""
}

const resourceTypeCols = "object_id, resource_id, name, data_type, units, multiple, operations"

func scanResourceType(r rowScanner) (ResourceType, error) {
	var rt ResourceType
	var obj, res int64
	var typ string
	if err := r.Scan(&obj, &res, &rt.Name, &typ, &rt.Units, &rt.Multiple, &rt.Operations); err != nil {
		return ResourceType{}, err
	}
	if obj < 0 || obj > lwm2m.MaxID || res < 0 || res > lwm2m.MaxID {
		return ResourceType{}, fmt.Errorf("resource type %d/%d: ID out of range", obj, res)
	}
	t, err := lwm2m.ParseType(typ)
	if err != nil {
		return ResourceType{}, fmt.Errorf("resource type %d/%d: %w", obj, res, err)
	}
	rt.ObjectID, rt.ResourceID, rt.DataType = uint16(obj), uint16(res), t
	return rt, nil
}

// UpsertResourceTypes inserts or replaces the given definitions in one
// transaction.
func (s *Store) UpsertResourceTypes(ctx context.Context, types []ResourceType) error {
	for _, rt := range types {
		if rt.ObjectID > lwm2m.MaxID || rt.ResourceID > lwm2m.MaxID {
			return fmt.Errorf("store: upsert resource types: %d/%d: ID above %d", rt.ObjectID, rt.ResourceID, lwm2m.MaxID)
		}
	}
	return wrap("upsert resource types", s.inTx(ctx, func(tx *sql.Tx) error {
		for _, rt := range types {
			_, err := tx.ExecContext(ctx, `
				INSERT INTO resource_type (`+resourceTypeCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (object_id, resource_id) DO UPDATE SET name = excluded.name,
					data_type = excluded.data_type, units = excluded.units,
					multiple = excluded.multiple, operations = excluded.operations`,
				int64(rt.ObjectID), int64(rt.ResourceID), rt.Name, rt.DataType.String(), rt.Units, rt.Multiple, rt.Operations)
			if err != nil {
				return fmt.Errorf("%d/%d: %w", rt.ObjectID, rt.ResourceID, err)
			}
		}
		return nil
	}))
}

// GetResourceType returns the definition of resource res of object obj.
func (s *Store) GetResourceType(ctx context.Context, obj, res uint16) (ResourceType, error) {
	rt, err := scanResourceType(s.rdb.QueryRowContext(ctx,
		"SELECT "+resourceTypeCols+" FROM resource_type WHERE object_id = $1 AND resource_id = $2", int64(obj), int64(res)))
	return rt, wrap(fmt.Sprintf("get resource type %d/%d", obj, res), err)
}

// ListResourceTypes returns all definitions ordered by object and resource.
func (s *Store) ListResourceTypes(ctx context.Context) ([]ResourceType, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+resourceTypeCols+" FROM resource_type ORDER BY object_id, resource_id")
	if err != nil {
		return nil, wrap("list resource types", err)
	}
	out, err := collect(rows, scanResourceType)
	return out, wrap("list resource types", err)
}

// DeleteResourceType removes the definition of resource res of object obj.
func (s *Store) DeleteResourceType(ctx context.Context, obj, res uint16) error {
	return wrap(fmt.Sprintf("delete resource type %d/%d", obj, res), requireRow(s.wdb.ExecContext(ctx,
		"DELETE FROM resource_type WHERE object_id = $1 AND resource_id = $2", int64(obj), int64(res))))
}
