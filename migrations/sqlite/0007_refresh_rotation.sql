-- A rotated refresh token's successor names it (parent_hash). Inserting the successor marks the
-- parent rotated in the same statement, so a refresh is one write (see rotate_refresh_token).
alter table refresh_tokens add column parent_hash text;

create trigger refresh_tokens_rotate_parent after insert on refresh_tokens
when new.parent_hash is not null
begin
    update refresh_tokens set rotated_at = new.created_at where token_hash = new.parent_hash;
end;
