-- A rotated refresh token's successor names it (parent_hash). Postgres rotates and inserts in
-- one statement with a data-modifying CTE (see rotate_refresh_token); SQLite uses a trigger.
alter table refresh_tokens add column parent_hash text;
