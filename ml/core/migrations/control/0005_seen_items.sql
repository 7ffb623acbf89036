-- A tenant's seen-items policy for recommendations: 'exclude' (never recommend what the user
-- already consumed, for content: the default) or 'allow' (repeats welcome: re-purchase, music).
alter table tenants add column seen_items text not null default 'exclude'
