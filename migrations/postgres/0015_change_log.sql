-- Changes that drop caches (tokens ended, clients changed, keys rotated), for the nodes of
-- other regions: NOTIFY and each region's Redis stay in their region (NOTIFY is not
-- replicated), so every node follows this table on its region's replica, where a change
-- appears only after the rows it describes.
create table change_log (
    seq bigserial primary key,
    origin text not null,
    kind text not null,
    at bigint not null
);
create index change_log_at on change_log (at);
