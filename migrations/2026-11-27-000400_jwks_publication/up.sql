-- When a key was first served in a JWKS (its activation delay counts from here, not from
-- created_at), when the JWKS stops serving it ahead of the grace period (`keys rotate --now`,
-- `keys revoke`), and when it was revoked. Better Auth ignores the extra columns.
ALTER TABLE jwks
    ADD COLUMN published_at timestamptz,
    ADD COLUMN unpublish_at timestamptz,
    ADD COLUMN revoked_at timestamptz;

-- Keys that exist already have been served by whatever ran before.
UPDATE jwks SET published_at = created_at;
