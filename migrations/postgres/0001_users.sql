create table users (
    id text primary key not null,
    email text not null,
    email_lower text not null unique,
    password_hash text,
    display_name text,
    created_at bigint not null,
    updated_at bigint not null,
    last_login_at bigint,
    disabled boolean not null default false,
    email_verified boolean not null default false
);

create table user_roles (
    user_id text not null references users (id) on delete cascade,
    role text not null,
    primary key (user_id, role)
);

-- One row per failed sign-in, keyed by account ("email:…") and by client ("ip:…").
create table login_failures (
    throttle_key text not null,
    failed_at bigint not null
);
create index login_failures_key_time on login_failures (throttle_key, failed_at);
