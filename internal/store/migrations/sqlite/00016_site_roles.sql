-- Site roles (package auth): a membership makes its user a Site Admin
-- ('admin', every site permission in the site) or a Site User ('user',
-- the site permissions whose bits flags holds, in auth.SitePermissions
-- order: view overview 1, view data 2, view firmware 4, manage firmware 8,
-- perform operations 16, manage devices 32). The earlier roles map onto
-- them: a viewer sees (1|2|4 = 7), an operator also operates (7|16 = 23).
-- migrations/postgres/00016_site_roles.sql is the same change for
-- PostgreSQL.

-- +goose Up
CREATE TABLE membership_new (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id  INTEGER NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    role     TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
    flags    INTEGER NOT NULL DEFAULT 0 CHECK (flags BETWEEN 0 AND 63),
    PRIMARY KEY (user_id, site_id)
) WITHOUT ROWID;
INSERT INTO membership_new (user_id, site_id, role, flags)
    SELECT user_id, site_id,
           CASE role WHEN 'admin' THEN 'admin' ELSE 'user' END,
           CASE role WHEN 'admin' THEN 63 WHEN 'operator' THEN 23 ELSE 7 END
    FROM membership;
DROP TABLE membership;
ALTER TABLE membership_new RENAME TO membership;
CREATE INDEX membership_site ON membership (site_id);

-- +goose Down
CREATE TABLE membership_old (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id  INTEGER NOT NULL REFERENCES site (id) ON DELETE CASCADE,
    role     TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    PRIMARY KEY (user_id, site_id)
) WITHOUT ROWID;
INSERT INTO membership_old (user_id, site_id, role)
    SELECT user_id, site_id,
           CASE WHEN role = 'admin' THEN 'admin' WHEN flags & 16 <> 0 THEN 'operator' ELSE 'viewer' END
    FROM membership;
DROP TABLE membership;
ALTER TABLE membership_old RENAME TO membership;
CREATE INDEX membership_site ON membership (site_id);
