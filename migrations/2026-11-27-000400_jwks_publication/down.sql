ALTER TABLE jwks
    DROP COLUMN revoked_at,
    DROP COLUMN unpublish_at,
    DROP COLUMN published_at;
