-- RFC 8707 resource indicators: what a client may ask for, what a code and a refresh token
-- were granted (space-separated URIs).
alter table oauth_clients add column resources text not null default '';
alter table auth_codes add column resources text not null default '';
alter table refresh_tokens add column resources text not null default '';
-- Set by a second redemption of a code, so that a first one racing it ends its own tokens.
alter table auth_codes add column replayed_at bigint;

-- Housekeeping prunes these by expiry (refresh tokens by a scan every few minutes: an index
-- would cost every rotation a write).
create index if not exists auth_codes_expiry on auth_codes (expires_at);
create index if not exists revoked_access_tokens_expiry on revoked_access_tokens (expires_at);
-- Token checks ask whether a grant (family) has ended: only revoked rows, so a family with
-- thousands of rotations answers from a small index.
create index if not exists refresh_tokens_family_revoked on refresh_tokens (family_id)
    where revoked_at is not null;
-- Rotation is one statement on both backends: the successor's insert, which names its parent.
-- A token with a successor is rotated; only one successor may name a parent.
create unique index if not exists refresh_tokens_parent on refresh_tokens (parent_hash)
    where parent_hash is not null;
