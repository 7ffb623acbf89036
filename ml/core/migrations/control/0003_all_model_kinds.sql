-- A tenant's model kinds: an empty list now means every registered kind (a new kind then reaches
-- existing tenants without a registry edit). Rows that listed exactly the two kinds of the time
-- (recommender and churn: the old default) become the default.
update tenants set model_kinds = '' where model_kinds in ('recommender,churn', 'churn,recommender');
