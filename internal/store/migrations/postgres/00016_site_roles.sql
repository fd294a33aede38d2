-- Site roles (package auth): a membership makes its user a Site Admin
-- ('admin', every site permission in the site) or a Site User ('user',
-- the site permissions whose bits flags holds, in auth.SitePermissions
-- order: view overview 1, view data 2, view firmware 4, manage firmware 8,
-- perform operations 16, manage devices 32). The earlier roles map onto
-- them: a viewer sees (1|2|4 = 7), an operator also operates (7|16 = 23).
-- migrations/sqlite/00016_site_roles.sql is the same change for SQLite.

-- +goose Up
ALTER TABLE membership DROP CONSTRAINT membership_role_check;
ALTER TABLE membership ADD COLUMN flags INTEGER NOT NULL DEFAULT 0 CHECK (flags BETWEEN 0 AND 63);
UPDATE membership SET flags = CASE role WHEN 'admin' THEN 63 WHEN 'operator' THEN 23 ELSE 7 END;
UPDATE membership SET role = 'user' WHERE role <> 'admin';
ALTER TABLE membership ADD CONSTRAINT membership_role_check CHECK (role IN ('admin', 'user'));

-- +goose Down
ALTER TABLE membership DROP CONSTRAINT membership_role_check;
UPDATE membership SET role = CASE WHEN role = 'admin' THEN 'admin' WHEN flags & 16 <> 0 THEN 'operator' ELSE 'viewer' END;
ALTER TABLE membership DROP COLUMN flags;
ALTER TABLE membership ADD CONSTRAINT membership_role_check CHECK (role IN ('viewer', 'operator', 'admin'));
