-- The transactional outbox: each event is written in the transaction of the change it
-- describes, as a CloudEvents 1.0 JSON document, with one delivery row per sink that wants it.
create table events (
    seq integer primary key autoincrement,
    id text not null unique,
    type text not null,
    subject text not null,
    time integer not null,
    document text not null
);
create index events_time on events (time);

-- Standard Webhooks endpoints. `events` is ' a b ' (spaces around each type) or '' for all;
-- secrets are sealed with the server key; the previous one signs too until it expires.
create table webhook_endpoints (
    id text primary key,
    url text not null,
    description text,
    events text not null,
    secret text not null,
    previous_secret text,
    previous_secret_until integer,
    created_at integer not null
);

-- One event for one sink: a webhook endpoint's id, or 'nats'. Claimed with a lease; only the
-- oldest pending delivery of a subject to a target is claimable, so each subject's events
-- arrive in order.
create table deliveries (
    id integer primary key autoincrement,
    event_seq integer not null references events (seq) on delete cascade,
    target text not null,
    subject text not null,
    state text not null default 'pending',
    attempts integer not null default 0,
    next_attempt_at integer not null,
    leased_until integer not null default 0,
    lease text,
    last_status integer,
    last_error text,
    created_at integer not null,
    finished_at integer
);
create index deliveries_due on deliveries (state, next_attempt_at);
create index deliveries_queue on deliveries (target, subject, event_seq) where state = 'pending';
create index deliveries_lease on deliveries (lease);
create index deliveries_target on deliveries (target, id);

-- Mail waiting for the workers. The message (it holds one-time links and codes) is sealed
-- with the server key and erased once sent.
create table mail_queue (
    id integer primary key autoincrement,
    recipient text not null,
    subject text not null,
    sealed_body text,
    state text not null default 'pending',
    attempts integer not null default 0,
    next_attempt_at integer not null,
    leased_until integer not null default 0,
    lease text,
    last_error text,
    created_at integer not null,
    finished_at integer
);
create index mail_queue_due on mail_queue (state, next_attempt_at);
create index mail_queue_lease on mail_queue (lease);
