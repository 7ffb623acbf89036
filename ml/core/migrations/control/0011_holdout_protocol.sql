-- Which holdout chooses a tenant's recommender champion: 'auto' (the temporal window where it
-- judges enough of the users, else a stratified random split), 'temporal' or 'random'.
alter table tenants add column holdout_protocol text not null default 'auto'
