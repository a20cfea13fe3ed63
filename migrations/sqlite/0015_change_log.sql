-- Kept for one schema on both backends; SQLite is one process and does not use it (see the
-- Postgres migration).
create table change_log (
    seq integer primary key autoincrement,
    origin text not null,
    kind text not null,
    at integer not null
);
create index change_log_at on change_log (at);
