-- Authorization codes (RFC 6749 §4.1), stored as SHA-256 hashes, single use, 60 s.
create table auth_codes (
    code_hash text primary key not null,
    client_id text not null,
    user_id text not null references users (id) on delete cascade,
    redirect_uri text not null,
    scope text not null,
    nonce text,
    code_challenge text,
    auth_time integer not null,
    amr text not null,
    created_at integer not null,
    expires_at integer not null,
    used_at integer
);

-- What a person allowed an app to see, per user and client.
create table consents (
    user_id text not null references users (id) on delete cascade,
    client_id text not null,
    scope text not null,
    granted_at integer not null,
    primary key (user_id, client_id)
);
