-- What the admin overview charts, counted per hour: audit events by name, second factors by
-- method, tokens by grant, throttle refusals by limit. Every node adds its own counts every
-- few seconds, so every node shows the same numbers.
create table activity (
    hour integer not null,
    kind text not null,
    label text not null,
    count integer not null,
    primary key (hour, kind, label)
);

-- The overview's totals count these without reading every account.
create index users_email_verified on users (email_verified);
create index users_email_otp_enabled on users (email_otp_enabled);
create index user_sessions_last_seen on user_sessions (last_seen_at);
