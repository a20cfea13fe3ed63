-- Throttles count attempts before the work they limit, one row per key (see src/throttle.rs):
-- the window began at window_start and holds attempts. Replaces the row-per-event table, whose
-- check-then-record shape let parallel requests outrun the limits.
drop table throttle_events;
create table throttle_counters (
    throttle_key text primary key,
    window_start bigint not null,
    attempts bigint not null
);
create index throttle_counters_window on throttle_counters (window_start);
