-- A person's account at an upstream OpenID provider (Google…), linked to a local user.
-- The pair (provider, subject) is the identity; the email is what the provider said last.
create table user_identities (
    provider text not null,
    subject text not null,
    user_id text not null references users (id) on delete cascade,
    email text,
    created_at integer not null,
    last_used_at integer,
    primary key (provider, subject)
);
create index user_identities_user on user_identities (user_id);
