-- Bumped to end every session of a user at once (password reset or change).
alter table users add column session_epoch integer not null default 0;
-- Email one-time codes as a second factor.
alter table users add column email_otp_enabled boolean not null default false;

-- Single-use links sent by mail (email verification, password reset), stored as SHA-256 hashes.
create table email_tokens (
    token_hash text primary key not null,
    user_id text not null references users (id) on delete cascade,
    purpose text not null,
    created_at integer not null,
    expires_at integer not null,
    used_at integer
);
create index email_tokens_user on email_tokens (user_id, purpose);

-- Short numeric codes sent by mail, one live code per user and purpose, stored hashed.
create table email_codes (
    user_id text not null references users (id) on delete cascade,
    purpose text not null,
    code_hash text not null,
    created_at integer not null,
    expires_at integer not null,
    attempts integer not null default 0,
    primary key (user_id, purpose)
);

-- An authenticator app (TOTP) per user; the secret is encrypted with the server key.
create table totp_factors (
    user_id text primary key not null references users (id) on delete cascade,
    secret_enc text not null,
    created_at integer not null,
    confirmed_at integer,
    last_used_step integer not null default 0
);

-- Single-use recovery codes, stored as keyed hashes.
create table recovery_codes (
    user_id text not null references users (id) on delete cascade,
    code_hash text not null,
    used_at integer,
    primary key (user_id, code_hash)
);
