DROP TABLE refresh_claims;
DROP TABLE pending_grants;
DROP INDEX oauth_flows_owner_id_idx;
ALTER TABLE oauth_flows DROP CONSTRAINT oauth_flows_owner_id_fkey;
