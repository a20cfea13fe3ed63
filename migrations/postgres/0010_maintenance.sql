-- One-off tasks that SQL alone cannot do (they need Rust), run at start-up until done: for
-- example rewriting addresses into their normal form (src/store/users.rs).
create table maintenance_done (
    task text primary key,
    done_at bigint not null
);
