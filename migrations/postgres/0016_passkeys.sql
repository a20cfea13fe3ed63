-- WebAuthn credentials (passkeys and security keys), any number per account.
create table passkeys (
    id text primary key not null,
    user_id text not null references users (id) on delete cascade,
    -- The credential id (base64url): one account only (WebAuthn §7.1, step 26).
    credential_id text not null unique,
    name text not null,
    -- webauthn-rs's `Passkey` as JSON: public key, algorithm and flags.
    credential text not null,
    -- The signature counter as last accepted (WebAuthn §6.1.1); 0 for authenticators without one.
    sign_count bigint not null default 0,
    -- Whether the credential can be synced (a passkey in a password manager) and is.
    backup_eligible boolean not null,
    backup_state boolean not null,
    created_at bigint not null,
    last_used_at bigint
);
create index passkeys_user on passkeys (user_id);

-- WebAuthn ceremonies already finished. A ceremony's state travels sealed with the server key in
-- the handle the browser or app holds, so beginning one writes nothing; finishing records it
-- here, so each handle is taken once, on whichever node. Kept until the handle expires.
create table passkey_ceremonies_used (
    -- SHA-256 of the handle.
    id text primary key not null,
    expires_at bigint not null
);
create index passkey_ceremonies_used_expiry on passkey_ceremonies_used (expires_at);
