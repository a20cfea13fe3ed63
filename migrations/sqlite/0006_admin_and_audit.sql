-- Security-relevant events: who did what to whom, from where.
create table audit_events (
    id integer primary key autoincrement,
    happened_at integer not null,
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

-- Admin search by name prefix (emails already have the unique email_lower index).
create index users_name_lower on users (lower(display_name));

-- Signed-in browser sessions, listed on /account and the admin's user page. The session itself
-- lives in the session store; this row is what makes it valid: deleting it ends the session.
create table user_sessions (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    created_at integer not null,
    last_seen_at integer not null,
    ip text,
    user_agent text,
    methods text not null
);
create index user_sessions_user on user_sessions (user_id, last_seen_at);
