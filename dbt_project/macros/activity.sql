{% macro recent_days_only(date_column, tenant_column) -%}
    {#- In an incremental run, keep only the days that may have changed: late events land up to
        7 days after they happen, per tenant (a tenant new to this warehouse, e.g. after a
        history import, has every day read), and var rebuild_from (a backfill, or history
        imported for a tenant already here) can reach further back. tenant_column: the outer
        query's tenant column, qualified. -#}
    {%- if is_incremental() %}
        and (
            {{ date_column }} >= coalesce(
                (select max(done.activity_date) from {{ this }} as done where done.tenant_id = {{ tenant_column }})
                - interval 7 day,
                date '0001-01-01'
            )
            {%- if var('rebuild_from') %}
            or {{ date_column }} >= cast('{{ var("rebuild_from") }}' as date) - interval 7 day
            {%- endif %}
        )
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
