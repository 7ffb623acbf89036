{% test same_tenant(model, column_name, to, field) %}
    {#- Every value must exist in `to` for the same tenant_id: a join that could pair two
        tenants' rows (ids like u000001 repeat across tenants) fails here. -#}
    select m.tenant_id, m.{{ column_name }}
    from {{ model }} as m
    left join {{ to }} as r
        on r.tenant_id = m.tenant_id and r.{{ field }} = m.{{ column_name }}
    where m.{{ column_name }} is not null and r.{{ field }} is null
{% endtest %}
