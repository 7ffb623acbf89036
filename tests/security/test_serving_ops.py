"""The serving API's operations surface as an outsider meets it, on loopback against the real process:
what ``/healthz``, ``/readyz`` and ``/metrics`` tell without the ops token, whether made-up paths
grow the metrics, and whether the bad-key throttle can be turned against a valid key or sidestepped."""

from __future__ import annotations

import stat
import time
import uuid

from tests.served import running_api

BAD_KEY = f"tf_{'0' * 12}_{'x' * 43}"


def test_without_the_ops_token_nothing_names_a_tenant(served_world):
    settings, keys = served_world
    with running_api(settings) as api:
        assert api.get("/healthz").json() == {"status": "ok"}
        bare = api.get("/readyz")
        assert bare.status_code == 200 and bare.json() == {"ready": True}
        assert api.get("/metrics").status_code == 401
        assert api.get("/metrics", ops=False).headers["www-authenticate"] == "Bearer"
        for path in ("/healthz", "/readyz"):
            assert not any(t in api.get(path).text for t in keys)
        detail = api.get("/readyz", ops=True).json()
        assert detail["tenants"] == len(keys) and detail["models_loaded"] > 0
        assert "acme" in api.get("/metrics", ops=True).text
        wrong = api.http.get("/metrics", headers={"Authorization": f"Bearer {keys['acme']}"})
        assert wrong.status_code == 401  # a tenant's key is not the ops token
    token = settings.stores.ops_token
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and stat.S_IMODE(token.parent.stat().st_mode) == 0o700


def test_made_up_paths_collapse_into_one_metrics_series(served_world):
    settings, keys = served_world
    with running_api(settings) as api:
        for i in range(40):
            api.post(f"/v1/{uuid.uuid4().hex}", None, {"user_id": "u"})
            api.post(f"/v1/x{i}", keys["acme"], {"user_id": "u"})
        before = api.get("/metrics", ops=True).text
        for _ in range(200):
            api.post(f"/v1/{uuid.uuid4().hex}", None, {"user_id": "u"})
            api.post(f"/v1/{uuid.uuid4().hex}", keys["acme"], {"user_id": "u"})
        after = api.get("/metrics", ops=True).text
    series = [line for line in after.splitlines() if line.startswith("tenantflow_requests_total{")]
    assert len(series) == len([line for line in before.splitlines() if line.startswith("tenantflow_requests_total{")])
    assert any('endpoint="unmatched"' in line and 'status="401"' in line for line in series)
    assert not any("/v1/x" in line for line in series)


def test_bad_keys_throttle_their_client_but_never_a_valid_key(served_world):
    settings, keys = served_world
    with running_api(settings, TENANTFLOW_SERVE_AUTH_FAILURES=5, TENANTFLOW_SERVE_AUTH_BLOCK_SECONDS=2) as a:
        codes = [a.post("/v1/recommendations", BAD_KEY, {"user_id": "u"}).status_code for _ in range(8)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        # the same address with a valid key (another person behind the same NAT) is served
        assert a.post("/v1/recommendations", keys["acme"], {"user_id": "u"}).status_code == 200
        # a new X-Forwarded-For on each guess is ignored: no proxy is configured
        spoofed = [
            a.post("/v1/recommendations", BAD_KEY, {"user_id": "u"}, headers={"X-Forwarded-For": f"10.0.0.{i}"})
            for i in range(5)
        ]
        assert {r.status_code for r in spoofed} == {429}
        assert spoofed[0].json()["error"]["code"] == "too_many_bad_keys"
        time.sleep(2.2)
        assert a.post("/v1/recommendations", BAD_KEY, {"user_id": "u"}).status_code == 401


def test_behind_a_configured_proxy_the_forwarded_client_is_throttled(served_world):
    settings, _ = served_world
    with running_api(settings, TENANTFLOW_SERVE_AUTH_FAILURES=3, TENANTFLOW_SERVE_TRUSTED_PROXIES="127.0.0.1") as a:

        def guess(client: str) -> int:
            return a.post(
                "/v1/recommendations", BAD_KEY, {"user_id": "u"}, headers={"X-Forwarded-For": client}
            ).status_code

        assert [guess("203.0.113.7") for _ in range(5)] == [401, 401, 401, 429, 429]
        assert guess("198.51.100.2") == 401  # another client behind the proxy is not blocked
