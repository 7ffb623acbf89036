"""The model plane: model kinds (``kinds``), fitting (``fit``), evaluation (``evaluate``, ``plots``),
training (``train``, ``runs``, ``fairness``), MLflow (``tracking``, ``registry``, ``champion``,
``audit``), the promotion gate (``gate``) and batch scoring (``score``)."""
