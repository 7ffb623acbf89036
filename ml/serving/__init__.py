"""The serving API: FastAPI app, key checks, routes, models and features in memory, the webhook."""
