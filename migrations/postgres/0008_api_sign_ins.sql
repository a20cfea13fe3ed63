-- First-party API sign-ins are token families. Each token remembers where it was issued (the
-- newest live token of a family says where it was last used) and when its family began, so a
-- person can see and end them. Listing by user needs an index.
alter table refresh_tokens add column ip text;
alter table refresh_tokens add column user_agent text;
alter table refresh_tokens add column family_created_at bigint;
create index refresh_tokens_user on refresh_tokens (user_id);
