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
