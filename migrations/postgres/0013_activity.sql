-- What the admin overview charts, counted per hour: audit events by name, second factors by
-- method, tokens by grant, throttle refusals by limit. Every node adds its own counts every
-- few seconds, so every node shows the same numbers.
create table activity (
    hour bigint not null,
    kind text not null,
    label text not null,
    count bigint not null,
    primary key (hour, kind, label)
);
