-- A value sealed with the secret key when the database was first used, so a node given another
-- key refuses to start instead of failing on every sealed secret (src/store/canary.rs).
create table secret_canary (
    id integer primary key check (id = 1),
    sealed text not null,
    created_at bigint not null
);
