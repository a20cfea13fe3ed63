-- Security-relevant events: who did what to whom, from where.
create table audit_events (
    id bigserial primary key,
    happened_at bigint not null,
    event text not null,
    actor_id text,
    subject_id text,
    detail text,
    ip text,
    user_agent text
);
create index audit_events_time on audit_events (happened_at);
create index audit_events_subject on audit_events (subject_id, id);
create index audit_events_actor on audit_events (actor_id, id);
create index audit_events_event on audit_events (event, id);

-- Admin search by prefix: `like 'q%'` uses these whatever the database collation.
create index users_email_pattern on users (email_lower text_pattern_ops);
create index users_name_lower on users (lower(display_name) text_pattern_ops);

-- Signed-in browser sessions, listed on /account and the admin's user page. The session itself
-- lives in the session store; this row is what makes it valid: deleting it ends the session.
create table user_sessions (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    created_at bigint not null,
    last_seen_at bigint not null,
    ip text,
    user_agent text,
    methods text not null
);
create index user_sessions_user on user_sessions (user_id, last_seen_at);
