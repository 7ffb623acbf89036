"""Shared definitions for Tenantflow's DAG files (not DAGs themselves; see .airflowignore)."""
