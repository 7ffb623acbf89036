{% macro recent_days_only(date_column) -%}
    {#- In an incremental run, keep only the days that may have changed: late events land up to
        7 days after they happen, and var rebuild_from (a backfill) can reach further back. -#}
    {%- if is_incremental() %}
        and {{ date_column }} >= (
            select {% if var('rebuild_from') %}least(cast('{{ var("rebuild_from") }}' as date), max(activity_date)){% else %}max(activity_date){% endif %}
            from {{ this }}
        ) - interval 7 day
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
