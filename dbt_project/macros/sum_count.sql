{% macro sum_count(expression, where=none) -%}
    {#- sum() of BIGINT counts, kept BIGINT. DuckDB widens sum(BIGINT) to HUGEINT (128-bit),
        which every later join, scan, Parquet export and pandas read pays for: a mart of such
        columns scanned ~5x slower. A per-tenant count cannot overflow 64 bits. -#}
    cast(sum({{ expression }}){% if where %} filter (where {{ where }}){% endif %} as bigint)
{%- endmacro %}
