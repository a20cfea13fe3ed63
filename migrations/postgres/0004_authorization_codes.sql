-- Authorization codes (RFC 6749 §4.1), stored as SHA-256 hashes, single use, 60 s.
create table auth_codes (
    code_hash text primary key not null,
    client_id text not null,
    user_id text not null references users (id) on delete cascade,
    redirect_uri text not null,
    scope text not null,
    nonce text,
    code_challenge text,
    auth_time bigint not null,
    amr text not null,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint,
    -- The access token issued for this code, denied if the code is presented again.
    access_jti text
);

-- What a person allowed an app to see, per user and client.
create table consents (
    user_id text not null references users (id) on delete cascade,
    client_id text not null,
    scope text not null,
    granted_at bigint not null,
    primary key (user_id, client_id)
);

-- Refresh tokens (opaque, SHA-256 hashed). Every rotation stays in its family; presenting a
-- rotated token revokes the whole family (RFC 9700 §4.14.2).
create table refresh_tokens (
    token_hash text primary key not null,
    family_id text not null,
    client_id text not null,
    user_id text not null references users (id) on delete cascade,
    scope text not null,
    auth_time bigint not null,
    amr text not null,
    session_epoch bigint not null,
    code_hash text,
    created_at bigint not null,
    expires_at bigint not null,
    rotated_at bigint,
    revoked_at bigint
);
create index refresh_tokens_family on refresh_tokens (family_id);
create index refresh_tokens_code on refresh_tokens (code_hash);

-- Revoked access tokens, denied until they would have expired anyway.
create table revoked_access_tokens (
    jti text primary key not null,
    expires_at bigint not null
);
