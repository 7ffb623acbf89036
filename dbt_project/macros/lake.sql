{% macro sql_list(values) -%}
    {%- if values | length == 0 -%}(null){%- else -%}({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %}){%- endif -%}
{%- endmacro %}
