{% macro sql_list(values) -%}
    {%- if values | length == 0 -%}(null){%- else -%}({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %}){%- endif -%}
{%- endmacro %}

{#- A per-tenant SQL expression: values (tenant -> an SQL expression) for the tenants it names,
    otherwise (an SQL expression) for every other tenant; just otherwise when values is empty. -#}
{% macro by_tenant(tenant_column, values, otherwise) -%}
    {%- if values | length == 0 -%}{{ otherwise }}{%- else -%}
    case {{ tenant_column }}
        {%- for tenant, value in values.items() %}
        when '{{ tenant }}' then {{ value }}
        {%- endfor %}
        else {{ otherwise }} end
    {%- endif -%}
{%- endmacro %}

{#- Whether an event is a rating below its tenant's min_rating (var min_ratings: tenant -> the
    lowest positive rating); a rating without a value is below any threshold. False for any other
    event, and for every event of a tenant without a threshold. -#}
{% macro below_min_rating(tenant_column, type_column, value_column) -%}
    {%- set below = {} -%}
    {%- for tenant, threshold in var('min_ratings').items() -%}
        {%- do below.update({tenant: 'coalesce(' ~ value_column ~ ' < ' ~ (threshold | float) ~ ', true)'}) -%}
    {%- endfor -%}
    {%- if below | length == 0 -%}false{%- else -%}
    ({{ type_column }} = 'rating' and {{ by_tenant(tenant_column, below, 'false') }})
    {%- endif -%}
{%- endmacro %}

{#- A tenant's min_rating as text ('any' without one): the rule its interactions were counted by. -#}
{% macro min_rating_text(tenant_column) -%}
    {%- set texts = {} -%}
    {%- for tenant, threshold in var('min_ratings').items() -%}
        {%- do texts.update({tenant: "'" ~ (threshold | float) ~ "'"}) -%}
    {%- endfor -%}
    {{ by_tenant(tenant_column, texts, "'any'") }}
{%- endmacro %}

{#- Whether an event's type is one of its tenant's positive interactions (var interaction_types:
    tenant -> its own event types; every other tenant: var interaction_event_types). A consumed
    item: the user took it (a rating below the tenant's min_rating included). -#}
{% macro is_interaction_type(tenant_column, type_column) -%}
    {%- set own = {} -%}
    {%- for tenant, types in var('interaction_types').items() -%}
        {%- do own.update({tenant: type_column ~ ' in ' ~ sql_list(types)}) -%}
    {%- endfor -%}
    {{ by_tenant(tenant_column, own, type_column ~ ' in ' ~ sql_list(var('interaction_event_types'))) }}
{%- endmacro %}

{#- A tenant's interaction types as text, comma-separated in the contract's order (e.g.
    'click,purchase,add_to_cart,rating', the platform's): the rule its interactions were counted by. -#}
{% macro interaction_types_text(tenant_column) -%}
    {%- set texts = {} -%}
    {%- for tenant, types in var('interaction_types').items() -%}
        {%- do texts.update({tenant: "'" ~ types | join(',') ~ "'"}) -%}
    {%- endfor -%}
    {{ by_tenant(tenant_column, texts, "'" ~ var('interaction_event_types') | join(',') ~ "'") }}
{%- endmacro %}
