"""The API's limits as a tenant's entry sets them (``quota_requests_per_minute``, ``quota_events_per_day``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.datastructures import Headers

from ml.core.tenants import Tenant, TenantStore
from ml.serving import keys
from ml.serving.auth import admit, suspended
from ml.serving.errors import ApiError
from ml.serving.limits import AuthThrottle, TokenBuckets


def test_a_quota_of_zero_refuses_every_request_and_a_small_one_admits_its_burst():
    """0 is a suspended tenant: its first request was admitted too (the bucket held one token)."""
    buckets = TokenBuckets(burst_seconds=40.0)
    assert [buckets.take("paused", 0) for _ in range(3)] == [60.0, 60.0, 60.0]
    # three a minute (a token every 20 s) with 40 s of burst: two admitted, then none for ~20 s
    admitted = [buckets.take("small", 3) == 0.0 for _ in range(5)]
    assert admitted == [True, True, False, False, False]
    assert 0 < buckets.take("small", 3) <= 20.0  # the wait for the next token, in seconds


def test_a_suspended_tenant_is_refused_with_403_naming_the_quota_and_how_to_lift_it(settings):
    """A key of a tenant whose requests quota is 0 gets 403 ``tenant_suspended`` (not a 429 whose Retry-After
    a client would obey forever); a tenant whose events quota alone is 0 is served, its webhook refused."""
    store = TenantStore(settings)
    store.add(Tenant("paused", "eu", quota_requests_per_minute=0))
    store.add(Tenant("quiet", "eu", quota_events_per_day=0))
    (_, paused_key), (_, quiet_key) = (
        keys.create_key("paused", settings=settings),
        keys.create_key("quiet", settings=settings),
    )
    state = SimpleNamespace(
        config=SimpleNamespace(max_body_bytes=1 << 20, max_events=1000),
        keys=keys.active_hashes(settings),
        throttle=AuthThrottle(),
        buckets=TokenBuckets(),
        tenants={t.tenant_id: t for t in store.list()},
    )
    with pytest.raises(ApiError) as refused:
        admit(Headers({"authorization": f"Bearer {paused_key}"}), "127.0.0.1", state)  # type: ignore[arg-type]
    assert (refused.value.status, refused.value.code) == (403, "tenant_suspended")
    assert "its quota_requests_per_minute is 0" in refused.value.message
    assert "tenantflow tenants add paused --replace --quota-requests-per-minute N" in refused.value.message
    quiet = admit(Headers({"authorization": f"Bearer {quiet_key}"}), "127.0.0.1", state)  # type: ignore[arg-type]
    assert quiet.tenant_id == "quiet" and suspended(quiet, "quota_requests_per_minute") is None
    events = suspended(quiet, "quota_events_per_day")  # what POST /v1/events raises for it
    assert events is not None and events.status == 403 and "--quota-events-per-day N" in events.message
