-- RFC 8707 resource indicators: what a client may ask for, what a code and a refresh token
-- were granted (space-separated URIs).
alter table oauth_clients add column resources text not null default '';
alter table auth_codes add column resources text not null default '';
alter table refresh_tokens add column resources text not null default '';
-- Set by a second redemption of a code, so that a first one racing it ends its own tokens.
alter table auth_codes add column replayed_at integer;
-- Rotation is now one transaction (update the parent, insert the successor) on both backends.
drop trigger if exists refresh_tokens_rotate_parent;
-- Housekeeping prunes these by expiry.
create index if not exists auth_codes_expiry on auth_codes (expires_at);
create index if not exists revoked_access_tokens_expiry on revoked_access_tokens (expires_at);
create index if not exists refresh_tokens_expiry on refresh_tokens (expires_at);
