{#- dbt's built-in not_null and accepted_values, each row of a failure naming its tenant.

    dbt favours a project's test block over its own (docs: "Writing custom generic data tests",
    overriding the built-in ones). The built-in versions return only the column (not_null) or one row
    per bad value (accepted_values), so a failure could not be told apart by tenant and the feature
    build held back every tenant of the warehouse (ml.data.features._failed_tests). On a relation with
    a tenant_id column these return it too: one tenant's null or bad value holds back that tenant
    alone. On any other relation, or before execution (parsing), they are dbt's own, by dispatch. -#}

{% macro _has_tenant_id(model) %}
    {#- `model` is a relation, or a subquery string where the test has a `where` config: read its
        columns from the query, not the catalog. -#}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
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
    {%- if column_name | lower != 'tenant_id' and _has_tenant_id(model) -%}
    select tenant_id, {{ column_name }} as value_field, count(*) as n_records
    from {{ model }}
    where {{ column_name }} not in (
        {%- for value in values -%}
            {%- if quote -%}'{{ value }}'{%- else -%}{{ value }}{%- endif -%}
            {%- if not loop.last -%}, {% endif -%}
        {%- endfor -%}
    )
    group by tenant_id, {{ column_name }}
    {%- else -%}
    {{ adapter.dispatch('test_accepted_values', 'dbt')(model, column_name, values, quote) }}
    {%- endif -%}
{% endtest %}
