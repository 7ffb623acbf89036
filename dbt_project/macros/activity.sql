{% macro recent_days_only(date_column, tenant_column) -%}
    {#- In an incremental run, keep only the days that may have changed: late events land up to
        7 days after they happen, per tenant (a tenant new to this warehouse, e.g. after a
        history import, has every day read), and var rebuild_from (a backfill, or history
        imported for a tenant already here) can reach further back. tenant_column: the outer
        query's tenant column, qualified. The days are those forget_days_read_again deleted. -#}
    {%- if is_incremental() %}
        and ({{ read_again(date_column, tenant_column) }})
    {%- endif %}
{%- endmacro %}

{% macro read_again(date_column, tenant_column) -%}
    {#- The days an incremental run reads again: from a week before each tenant's last day,
        as the pre-hook found it (its temporary table), or from var rebuild_from's week. -#}
    {{ date_column }} >= coalesce(
        (select bound.read_from from {{ this.identifier }}__read_again as bound where bound.tenant_id = {{ tenant_column }}),
        date '0001-01-01'
    )
    {%- if var('rebuild_from') %}
    or {{ date_column }} >= cast('{{ var("rebuild_from") }}' as date) - interval 7 day
    {%- endif %}
{%- endmacro %}

{% macro forget_days_read_again(date_column) -%}
    {#- Pre-hook of an incremental daily model: delete, whole, the days the run reads again. The
        merge (delete+insert on the model's key) replaces only the keys the new rows have, so a
        key whose events no longer make a row (a changed spec lands a line as a charge, which is
        no item; an erased or re-classified event) would keep its old row. A tenant whose
        interaction rule changed since the last build (its min_rating or interaction_types:
        other events are clicks now) gets no bound: every one of its days is read again, as a
        tenant new to the warehouse. -#}
    {%- if is_incremental() %}
    create or replace temp table {{ this.identifier }}__read_again as
    select tenant_id, max({{ date_column }}) - interval 7 day as read_from from {{ this }}
    where tenant_id not in ({{ tenants_with_a_new_interaction_rule() }})
    group by tenant_id;
    delete from {{ this }} as done where {{ read_again('done.' ~ date_column, 'done.tenant_id') }}
    {%- endif %}
{%- endmacro %}

{% macro at_serving_cutoff(as_of_relation) -%}
    {#- The rows of a per-cutoff model that belong to each tenant's serving cutoff. -#}
    select as_of.*
    from {{ as_of_relation }} as as_of
    inner join {{ ref('int_feature_cutoffs') }} as cutoffs
        on cutoffs.tenant_id = as_of.tenant_id
        and cutoffs.cutoff_date = as_of.cutoff_date
    where cutoffs.is_serving
    -- tenant order: zone maps skip other tenants' row groups on per-tenant reads
    order by as_of.tenant_id
{%- endmacro %}

{% macro tenants_with_a_new_interaction_rule() -%}
    {#- A query of the tenants whose interaction rule (vars min_ratings and interaction_types) is
        not the one the last build counted with (int_tenant_windows.min_rating and
        .interaction_types, still the last build's when the daily models run: it is built after
        both, and not when either fails); a warehouse built before a column: the platform's rule
        ('any', var interaction_event_types). -#}
    {%- set last = adapter.get_relation(database=this.database, schema=this.schema, identifier='int_tenant_windows') -%}
    {%- if last is none -%}
    select null where false
    {%- else -%}
    {%- set columns = adapter.get_columns_in_relation(last) | map(attribute='name') | list -%}
    {%- set platform_types = "'" ~ var('interaction_event_types') | join(',') ~ "'" -%}
    select last_build.tenant_id from {{ last }} as last_build
    where {{ 'last_build.min_rating' if 'min_rating' in columns else "'any'" }}
        <> {{ min_rating_text('last_build.tenant_id') }}
        or {{ 'last_build.interaction_types' if 'interaction_types' in columns else platform_types }}
        <> {{ interaction_types_text('last_build.tenant_id') }}
    {%- endif -%}
{%- endmacro %}
