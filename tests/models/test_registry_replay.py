"""The audit log replayed (ml.models.registry._replay): where the platform left `champion` and
`challenger`, which the serving API compares with MLflow's aliases to catch moves made outside it."""

from __future__ import annotations

from ml.models import audit, registry


def _log(settings, *rows):
    for action, from_version, to_version in rows:
        audit.record("recommender", "acme", action, from_version, to_version, "test", settings, who="tester")
    return registry._replay("recommender", "acme", settings)


def test_a_newer_champion_retires_an_older_challenger_only_through_its_own_audit_row(settings):
    # v2 refused (challenger), v3 promoted: the promote row alone leaves v2 the challenger, as a log
    # written before `retire` existed says; the `retire` row ends its A/B test
    assert _log(settings, ("promote", None, "1"), ("refuse", "1", "2"), ("promote", "1", "3")) == (["1", "3"], "3", "2")
    assert _log(settings, ("retire", "2", None)) == (["1", "3"], "3", None)
    # a retire whose alias could not be deleted is undone by its move_failed row
    assert _log(settings, ("refuse", "3", "4"), ("retire", "4", None), ("move_failed", None, "4"))[2] == "4"


def test_promoting_the_challenger_itself_clears_it_and_a_rollback_keeps_it(settings):
    assert _log(settings, ("promote", None, "1"), ("refuse", "1", "2"), ("promote", "1", "2"))[1:] == ("2", None)
    assert _log(settings, ("refuse", "2", "3"), ("rollback", "2", "1"))[1:] == ("1", "3")
