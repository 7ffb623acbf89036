"""The API's limits as a tenant's entry sets them (``quota_requests_per_minute``, ``quota_events_per_day``)."""

from __future__ import annotations

from ml.serving.limits import TokenBuckets
from ml.serving.webhook import QuotaExceeded


def test_a_quota_of_zero_refuses_every_request_and_a_small_one_admits_its_burst():
    """0 is a suspended tenant: its first request was admitted too (the bucket held one token)."""
    buckets = TokenBuckets(burst_seconds=40.0)
    assert [buckets.take("paused", 0) for _ in range(3)] == [60.0, 60.0, 60.0]
    # three a minute (a token every 20 s) with 40 s of burst: two admitted, then none for ~20 s
    admitted = [buckets.take("small", 3) == 0.0 for _ in range(5)]
    assert admitted == [True, True, False, False, False]
    assert 0 < buckets.take("small", 3) <= 20.0  # the wait for the next token, in seconds


def test_a_suspended_tenants_events_are_refused_saying_so():
    assert "suspended: its quota_events_per_day is 0" in str(QuotaExceeded(0, 0, 60.0))
    assert str(QuotaExceeded(500, 500, 60.0)) == "daily event quota of 500 reached (500 accepted today)"
