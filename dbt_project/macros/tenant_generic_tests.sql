{#- dbt's built-in generic tests on a pooled warehouse: their failures name the tenants they belong to.

    dbt favours a project's test block over its own (docs: "Writing custom generic data tests",
    overriding the built-in ones). The built-in versions return only the column (not_null, relationships) or
    one row per bad value (accepted_values, unique), so a failure could not be told apart by tenant and the feature
    build held back every tenant of the warehouse (ml.data.dbt_failures.failed_tests). On a relation with
    a tenant_id column these name the tenants too; not_null and accepted_values fail, warn and count
    exactly as dbt's own, unique and relationships hold within a tenant:
    - not_null: the same rows, with tenant_id beside the column;
    - accepted_values: the same one row per bad value, with tenant_rows, a map of tenant_id to that
      value's rows (a null tenant_id as '': no tenant of the warehouse, so every one is held back);
    - unique: a value must be unique within its tenant (one row per tenant and repeated value, with
      tenant_rows), where dbt's own fails on ids that two tenants share (u000001 is a user of many);
    - relationships, where both sides have tenant_id: a child row's parent must be the same tenant's
      (ids repeat across tenants: u000001 is a user of many), so it also fails on a row whose only
      parent is another tenant's, which dbt's own passes; one row per orphan row, as dbt's own.
    accepted_values on tenant_id itself names the tenants of its bad values (an engineer's "only these
    tenants here"). Elsewhere they are dbt's own, by dispatch: a relation without tenant_id, not_null,
    unique and relationships on tenant_id itself,
    an ephemeral model (a CTE of the test's own query), and any command but build and test (compile and
    docs generate compile tests whose models may not be built yet). -#}

{% macro _has_tenant_id(model) %}
    {%- if not execute or flags.WHICH not in ('build', 'test') -%}{{ return(false) }}{%- endif -%}
    {#- `model` is a relation, or a subquery string where the test has a `where` config: read the
        columns from a query, which both are; build and test run a test only after its model built. -#}
    {%- if '__dbt__cte__' in (model | string) -%}{{ return(false) }}{%- endif -%}
    {%- set names = run_query('select * from ' ~ model ~ ' limit 0').column_names | map('lower') | list -%}
    {{ return('tenant_id' in names) }}
{% endmacro %}

{% test not_null(model, column_name) %}
    {%- if column_name | lower != 'tenant_id' and _has_tenant_id(model) -%}
    {%- set column_list = '*' if should_store_failures() else 'tenant_id, ' ~ column_name -%}
    select {{ column_list }}
    from {{ model }}
    where {{ column_name }} is null
    {%- else -%}
    {{ adapter.dispatch('test_not_null', 'dbt')(model, column_name) }}
    {%- endif -%}
{% endtest %}

{% test accepted_values(model, column_name, values, quote=True) %}
    {#- on tenant_id itself too: a bad value is a tenant's id, so tenant_rows holds back that tenant -#}
    {%- if _has_tenant_id(model) -%}
    select
        {{ column_name }} as value_field,
        count(*) as n_records,
        histogram(coalesce(cast(tenant_id as varchar), '')) as tenant_rows
    from {{ model }}
    where {{ column_name }} not in (
        {%- for value in values -%}
            {%- if quote -%}'{{ value }}'{%- else -%}{{ value }}{%- endif -%}
            {%- if not loop.last -%}, {% endif -%}
        {%- endfor -%}
    )
    group by {{ column_name }}
    {%- else -%}
    {{ adapter.dispatch('test_accepted_values', 'dbt')(model, column_name, values, quote) }}
    {%- endif -%}
{% endtest %}

{% test unique(model, column_name) %}
    {%- if column_name | lower != 'tenant_id' and _has_tenant_id(model) -%}
    select
        tenant_id,
        {{ column_name }} as unique_field,
        count(*) as n_records,
        map([coalesce(cast(tenant_id as varchar), '')], [count(*)]) as tenant_rows
    from {{ model }}
    where {{ column_name }} is not null
    group by tenant_id, {{ column_name }}
    having count(*) > 1
    {%- else -%}
    {{ adapter.dispatch('test_unique', 'dbt')(model, column_name) }}
    {%- endif -%}
{% endtest %}

{% test relationships(model, column_name, to, field) %}
    {%- if column_name | lower != 'tenant_id' and _has_tenant_id(model) and _has_tenant_id(to) -%}
    with child as (
        select tenant_id, {{ column_name }} as from_field
        from {{ model }}
        where {{ column_name }} is not null
    ),
    parent as (
        select tenant_id, {{ field }} as to_field
        from {{ to }}
    )
    select child.tenant_id, child.from_field
    from child
    left join parent
        on parent.tenant_id is not distinct from child.tenant_id and parent.to_field = child.from_field
    where parent.to_field is null
    {%- else -%}
    {{ adapter.dispatch('test_relationships', 'dbt')(model, column_name, to, field) }}
    {%- endif -%}
{% endtest %}
