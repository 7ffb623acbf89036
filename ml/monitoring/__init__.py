"""Monitoring: per-tenant drift and decay checks, and what to do about them (retrain or roll back).

``policy`` (thresholds, cooldown, budget, per-tenant overrides), ``drift`` (Evidently reports),
``windows`` (what a tenant's checks compare), ``live`` (how served predictions did), ``checks``
(every check of one tenant), ``results`` (the ``monitoring`` tables), ``run`` (a warehouse's
tenants), ``decisions`` (the drift retrain to trigger), ``rollback`` (undoing a promotion that
hurt).
"""
