"""The API's routes: ``events`` (the webhook), ``predictions`` (one per model kind), ``ops`` (health, metrics)."""
