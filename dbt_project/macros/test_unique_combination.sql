{% test unique_combination(model, combination_of_columns) %}
    {#- Fails with one row per key that occurs more than once (dbt_utils-free, no package download). -#}
    select {{ combination_of_columns | join(', ') }}, count(*) as n_rows
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
{% endtest %}
