{% macro sql_list(values) -%}
    {%- if values | length == 0 -%}(null){%- else -%}({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %}){%- endif -%}
{%- endmacro %}

{#- Whether an event is a rating below its tenant's min_rating (var min_ratings: tenant -> the
    lowest positive rating); a rating without a value is below any threshold. False for any other
    event, and for every event of a tenant without a threshold. -#}
{% macro below_min_rating(tenant_column, type_column, value_column) -%}
    {%- set min_ratings = var('min_ratings') -%}
    {%- if min_ratings | length == 0 -%}false{%- else -%}
    ({{ type_column }} = 'rating' and case {{ tenant_column }}
        {%- for tenant, threshold in min_ratings.items() %}
        when '{{ tenant }}' then coalesce({{ value_column }} < {{ threshold | float }}, true)
        {%- endfor %}
        else false end)
    {%- endif -%}
{%- endmacro %}

{#- A tenant's min_rating as text ('any' without one): the rule its interactions were counted by. -#}
{% macro min_rating_text(tenant_column) -%}
    {%- set min_ratings = var('min_ratings') -%}
    {%- if min_ratings | length == 0 -%}'any'{%- else -%}
    case {{ tenant_column }}
        {%- for tenant, threshold in min_ratings.items() %}
        when '{{ tenant }}' then '{{ threshold | float }}'
        {%- endfor %}
        else 'any' end
    {%- endif -%}
{%- endmacro %}

{#- Whether an event's type is one of its tenant's positive interactions (var interaction_types:
    tenant -> its own event types; every other tenant: var interaction_event_types). A consumed
    item: the user took it (a rating below the tenant's min_rating included). -#}
{% macro is_interaction_type(tenant_column, type_column) -%}
    {%- set own = var('interaction_types') -%}
    {%- if own | length == 0 -%}
    {{ type_column }} in {{ sql_list(var('interaction_event_types')) }}
    {%- else -%}
    case {{ tenant_column }}
        {%- for tenant, types in own.items() %}
        when '{{ tenant }}' then {{ type_column }} in {{ sql_list(types) }}
        {%- endfor %}
        else {{ type_column }} in {{ sql_list(var('interaction_event_types')) }} end
    {%- endif -%}
{%- endmacro %}

{#- A tenant's interaction types as text, comma-separated in the contract's order (e.g.
    'click,purchase,add_to_cart,rating', the platform's): the rule its interactions were counted by. -#}
{% macro interaction_types_text(tenant_column) -%}
    {%- set own = var('interaction_types') -%}
    {%- set platform = "'" ~ var('interaction_event_types') | join(',') ~ "'" -%}
    {%- if own | length == 0 -%}{{ platform }}{%- else -%}
    case {{ tenant_column }}
        {%- for tenant, types in own.items() %}
        when '{{ tenant }}' then '{{ types | join(",") }}'
        {%- endfor %}
        else {{ platform }} end
    {%- endif -%}
{%- endmacro %}
