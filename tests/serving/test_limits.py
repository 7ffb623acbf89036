"""The API's rate limits as a tenant's entry sets them (``quota_requests_per_minute``)."""

from __future__ import annotations

from ml.serving.limits import TokenBuckets


def test_a_quota_of_zero_refuses_every_request_and_a_small_one_admits_its_burst():
    """0 is a suspended tenant: its first request was admitted too (the bucket held one token)."""
    buckets = TokenBuckets(burst_seconds=2.0)
    assert [buckets.take("paused", 0) for _ in range(3)] == [60.0, 60.0, 60.0]
    admitted = [buckets.take("small", 60) == 0.0 for _ in range(5)]  # one a second: a 2-second burst
    assert admitted == [True, True, False, False, False]
    assert 0 < buckets.take("small", 60) <= 1.0  # the wait for the next token, in seconds
