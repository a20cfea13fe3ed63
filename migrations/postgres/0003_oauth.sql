-- Relying apps. Secrets are stored as HMAC-SHA256 under the server key (fast, never argon2:
-- the token endpoint checks one per request). Lists are space- or newline-separated.
create table oauth_clients (
    id text primary key not null,
    name text not null,
    secret_hash text,
    redirect_uris text not null,
    post_logout_redirect_uris text not null,
    grant_types text not null,
    scopes text not null,
    skip_consent boolean not null default false,
    access_token_ttl bigint not null,
    refresh_token_ttl bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- Token signing keys, private parts encrypted with the server key so every node shares them.
create table signing_keys (
    kid text primary key not null,
    alg text not null,
    private_key_enc text not null,
    created_at bigint not null,
    activates_at bigint not null,
    retired_at bigint
);
