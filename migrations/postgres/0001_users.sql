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

-- One row per throttled event (a failed sign-in, a resent mail…), keyed by what is
-- throttled: "login:email:…", "login:ip:…".
create table throttle_events (
    throttle_key text not null,
    happened_at bigint not null
);
create index throttle_events_key_time on throttle_events (throttle_key, happened_at);
