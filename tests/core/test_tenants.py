"""Tenants: ids that can reach paths and SQL are validated, the store round-trips, the CLI onboards."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import pytest

from ml.core import audit
from ml.core.errors import TenantError
from ml.core.ids import validate_slug
from ml.core.tenant_seed import seed_from_file
from ml.core.tenants import Tenant, TenantStore
from ml.core.warehouse import warehouses
from ml.ops.cli import main

BAD_IDS = [
    "",
    "Acme",
    "acme corp",
    "../etc",
    "acme/../../x",
    "a'b",
    "acme;drop table tenants",
    "-acme",
    "acme-",
    "ac..me",
    "x" * 41,
    "1acme",
    "acme\n",
    "ACME",
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_tenant_ids_are_refused_with_a_clear_message(bad):
    with pytest.raises(TenantError, match="tenant id"):
        validate_slug(bad)


@pytest.mark.parametrize("good", ["acme", "news-co", "a1", "big_media_2"])
def test_good_ids_pass(good):
    assert validate_slug(good) == good


def test_registry_roundtrip_and_errors(settings):
    reg = TenantStore(settings)
    reg.add(Tenant("acme", "eu", onboarded_at=date(2026, 1, 2), quota_events_per_day=10))
    reg.add(Tenant("initech", "us", isolation="silo", share_data=False))
    assert [t.tenant_id for t in reg.list()] == ["acme", "initech"]
    acme = reg.get("acme")
    assert (acme.region, acme.isolation, acme.share_data, acme.onboarded_at, acme.quota_events_per_day) == (
        "eu",
        "pool",
        True,
        date(2026, 1, 2),
        10,
    )
    with pytest.raises(TenantError, match="already exists"):
        reg.add(Tenant("acme", "eu"))
    with pytest.raises(TenantError, match="unknown tenant"):
        reg.get("nobody")
    with pytest.raises(TenantError, match="invalid tenant id"):
        reg.get("x'; drop table tenants; --")
    reg.remove("acme")
    assert [t.tenant_id for t in reg.list()] == ["initech"]


def test_silo_cannot_share_and_tiers_map_to_warehouses():
    with pytest.raises(TenantError, match="silo tenant cannot share"):
        Tenant("initech", "us", isolation="silo", share_data=True)
    whs = warehouses([Tenant("a", "eu"), Tenant("b", "eu"), Tenant("c", "eu", isolation="silo", share_data=False)])
    assert [w.key for w in whs] == ["eu/pool", "eu/silo_c"]
    assert whs[0].tenants == ("a", "b") and whs[0].sharing_tenants == ("a", "b")


def test_the_seen_items_policy_windows_and_holdout_protocol_are_validated_tenant_settings(settings, capsys):
    assert Tenant("acme", "eu").seen_items == "exclude"  # the default: content is not recommended twice
    with pytest.raises(TenantError, match="seen_items must be one of"):
        Tenant("acme", "eu", seen_items="sometimes")
    assert main(["tenants", "add", "shop", "--region", "eu", "--seen-items", "allow"]) == 0
    assert TenantStore(settings).get("shop").seen_items == "allow"
    assert main(["tenants", "add", "bad", "--region", "eu", "--seen-items", "twice"]) == 2
    assert "seen_items must be one of" in capsys.readouterr().err
    assert TenantStore(settings).get("shop").label_window_days is None  # derived from its cadence
    assert main(["tenants", "add", "books", "--region", "eu", "--label-window-days", "28"]) == 0
    assert TenantStore(settings).get("books").label_window_days == 28
    with pytest.raises(TenantError, match="label_window_days must be 1..91"):
        Tenant("acme", "eu", label_window_days=0)
    assert TenantStore(settings).get("books").churn_window_days is None  # derived from its cadence
    assert main(["tenants", "add", "shop2", "--region", "eu", "--churn-window-days", "91"]) == 0
    assert TenantStore(settings).get("shop2").churn_window_days == 91
    assert main(["tenants", "add", "odd2", "--region", "eu", "--churn-window-days", "3"]) == 2
    assert "churn_window_days must be 7..182" in capsys.readouterr().err
    assert TenantStore(settings).get("books").feature_window_days is None  # derived from its cadence
    assert main(["tenants", "add", "shop3", "--region", "eu", "--feature-window-days", "126"]) == 0
    assert TenantStore(settings).get("shop3").feature_window_days == 126
    assert main(["tenants", "add", "odd3", "--region", "eu", "--feature-window-days", "7"]) == 2
    assert "feature_window_days must be 14..364" in capsys.readouterr().err
    assert TenantStore(settings).get("books").holdout_protocol == "auto"
    assert main(["tenants", "add", "films", "--region", "eu", "--holdout-protocol", "random"]) == 0
    assert TenantStore(settings).get("films").holdout_protocol == "random"
    assert main(["tenants", "add", "odd", "--region", "eu", "--holdout-protocol", "leave_one_out"]) == 2
    assert "holdout_protocol must be one of" in capsys.readouterr().err
    assert main(["tenants", "list"]) == 0  # each window: its setting, or derived from the activity cadence
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("│")}
    assert "28/cadence/cadence" in rows["books"] and "cadence/91/cadence" in rows["shop2"]
    assert "cadence/cadence/126" in rows["shop3"]


def test_a_tenants_interaction_types_are_ways_of_taking_an_item_one_spelling_each_and_survive_the_store(
    settings, tmp_path, capsys
):
    """``interaction_types``: checked against the contract (a skip or a return is no liking), kept in
    the contract's order (a change of order is no change), stored, seeded and listed; empty: the
    platform's; a min_rating beside types without ratings is refused (it could apply to nothing)."""
    assert Tenant("acme", "eu").interactions == ("click", "purchase", "add_to_cart", "rating")
    assert Tenant("acme", "eu", interaction_types=("rating", "view", "view")).interaction_types == ("view", "rating")
    for bad in ("skip", "return", "charge", "item_published", "pageview"):
        with pytest.raises(TenantError, match=f"interaction_types may name .*got '{bad}'.*source spec's event_types"):
            Tenant("acme", "eu", interaction_types=("view", bad))
    with pytest.raises(TenantError, match="min_rating applies to rating events.*leave ratings out"):
        Tenant("acme", "eu", interaction_types=("view",), min_rating=4)
    assert main(["tenants", "add", "news", "--region", "eu", "--interaction-types", "like, view"]) == 0
    assert TenantStore(settings).get("news").interaction_types == ("view", "like")
    assert main(["tenants", "add", "odd", "--region", "eu", "--interaction-types", "scroll"]) == 2
    assert "tenant odd: interaction_types may name" in capsys.readouterr().err
    assert main(["tenants", "add", "odd", "--region", "eu", "--interaction-types", " , "]) == 2  # a slip: no default
    assert "interaction_types names nothing (' , '); for the default leave it out" in capsys.readouterr().err
    unset = Tenant("acme", "eu", interaction_types=None)  # type: ignore[arg-type]  (a Python caller's None)
    assert unset.interactions == Tenant("acme", "eu").interactions
    seed = tmp_path / "tenants.yaml"
    seed.write_text(
        "- {tenant_id: films, region: eu, interaction_types: [rating, like]}\n"
        "- {tenant_id: shop, region: eu, interaction_types: 'purchase,add_to_cart'}\n"
        "- {tenant_id: plain, region: eu, interaction_types: ''}\n"
    )
    seed_from_file(seed, TenantStore(settings))
    stored = {t.tenant_id: t.interaction_types for t in TenantStore(settings).list()}
    assert stored == {
        "films": ("like", "rating"), "news": ("view", "like"), "plain": (), "shop": ("purchase", "add_to_cart")
    }  # fmt: skip
    capsys.readouterr()
    assert main(["tenants", "list"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("│")}
    assert "view,like" in rows["news"] and " default " in rows["plain"]
    seed.write_text(  # a seed file that changes a rule says so, as the CLI does; one that keeps it, nothing
        "- {tenant_id: films, region: eu, interaction_types: rating}\n"
        "- {tenant_id: plain, region: eu, interaction_types: [click, purchase, add_to_cart, rating]}\n"
    )
    assert main(["tenants", "seed", str(seed)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "films: interaction_types changed (like,rating -> rating): the next feature build" in said, said
    assert "plain: interaction_types changed" not in said
    seed.write_text("- {tenant_id: films, region: eu, interaction_types: 3}\n")
    with pytest.raises(TenantError, match="tenant #1: interaction_types must be a list"):
        seed_from_file(seed, TenantStore(settings))


def test_replace_changes_only_the_fields_given_and_never_moves_a_tenants_data(settings, tmp_path, capsys):
    """``tenants add --replace`` changes the options on the command line and keeps every other field (a
    silo tenant stays a silo that shares nothing, its name and onboarding day stay), says what moved,
    sets a field back to its default only by ``--unset``, and refuses to move the tenant to another
    region or tier: its data stays where it is."""
    argv = ["tenants", "add", "initech", "--region", "us", "--isolation", "silo", "--share-data", "no"]
    assert main([*argv, "--display-name", "Initech", "--onboarded-at", "2026-01-05", "--min-rating", "4"]) == 0
    capsys.readouterr()
    assert main(["tenants", "add", "initech", "--interaction-types", "view,rating", "--replace"]) == 0
    kept = TenantStore(settings).get("initech")
    assert (kept.region, kept.isolation, kept.share_data, kept.display_name) == ("us", "silo", False, "Initech")
    assert (kept.onboarded_at, kept.min_rating, kept.interaction_types) == (date(2026, 1, 5), 4.0, ("view", "rating"))
    said = " ".join(capsys.readouterr().out.split())
    assert "onboarded" not in said and "interaction_types changed (click,purchase,add_to_cart,rating" in said, said
    assert main(["tenants", "add", "initech", "--seen-items", "allow", "--unset", "min_rating", "--replace"]) == 0
    assert "initech: changed seen_items (exclude -> allow)" in " ".join(capsys.readouterr().out.split())
    assert TenantStore(settings).get("initech").min_rating is None
    for moved, words in (
        (["--region", "eu"], "lives in region us (silo); its data stays there"),
        (["--isolation", "pool", "--share-data", "yes"], "cannot move it to us (pool)"),
    ):
        assert main(["tenants", "add", "initech", *moved, "--replace"]) == 2
        assert words in " ".join(capsys.readouterr().err.split())
    for bad, words in (
        (["initech", "--unset", "region", "--replace"], "--unset takes model_kinds"),
        (["initech", "--min-rating", "3", "--unset", "min_rating", "--replace"], "both given and --unset"),
        (["newco", "--region", "eu", "--unset", "min_rating"], "--unset changes an existing tenant"),
        (["newco"], "--region is required"),
    ):
        assert main(["tenants", "add", *bad]) == 2, bad
        assert words in " ".join(capsys.readouterr().err.split()), bad
    assert main(["tenants", "add", "initeck", "--region", "us", "--min-rating", "3", "--replace"]) == 2  # a typo
    assert "tenant initeck is not onboarded: --replace changes an existing tenant" in capsys.readouterr().err
    assert main(["tenants", "add", "initech", "--min-rating", "3"]) == 2  # a change says --replace, not --region
    assert "initech already exists; add --replace to change the options given" in capsys.readouterr().err
    assert TenantStore(settings).get("initech").isolation == "silo"
    with pytest.raises(TenantError, match="lives in region us"):  # the store refuses it too (Python)
        TenantStore(settings).add(Tenant("initech", "eu", share_data=False), replace=True)
    # a seed entry changes the fields it names (its consent to share data kept where it says nothing), and the
    # file is checked whole first: an entry that would move a tenant, an id twice or a removed id store none of it
    TenantStore(settings).add(Tenant("acme", "eu", share_data=False, display_name="ACME"))
    TenantStore(settings).add(Tenant("gone", "eu"))
    TenantStore(settings).remove("gone")
    seed = tmp_path / "tenants.yaml"
    for second, words in (
        ("{tenant_id: initech, region: eu, share_data: no}", "tenant #2: tenant initech lives in region us"),
        ("{tenant_id: acme, min_rating: 3}", "tenant #2: tenant acme is in the file twice"),
        ("{tenant_id: gone, region: eu}", "tenant #2: tenant id 'gone' was removed and is never reused"),
    ):
        seed.write_text(f"- {{tenant_id: acme, min_rating: 4}}\n- {second}\n")
        with pytest.raises(TenantError, match=words):
            seed_from_file(seed, TenantStore(settings))
        assert TenantStore(settings).get("acme").min_rating is None, "an entry before the bad one was stored"
    # a misspelt field is refused, naming the field it is likely a slip for (it left the tenant as it was, silently)
    seed.write_text("- {tenant_id: acme, quota_request_per_minute: 0}\n")
    with pytest.raises(
        TenantError, match="tenant #1: unknown field 'quota_request_per_minute': did you mean quota_req"
    ):
        seed_from_file(seed, TenantStore(settings))
    with pytest.raises(TenantError, match="missing.yaml: cannot be read"):
        seed_from_file(tmp_path / "missing.yaml", TenantStore(settings))
    seed.write_text("- {tenant_id: acme, min_rating: 4}\n")
    [acme] = seed_from_file(seed, TenantStore(settings))
    assert (acme.min_rating, acme.share_data, acme.display_name, acme.region) == (4.0, False, "ACME", "eu")
    assert main(["tenants", "show", "initech"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["interaction_types"] == ["view", "rating"] and shown["interactions"] == ["view", "rating"]


def test_counts_are_whole_numbers_and_quotas_never_negative_from_every_entry(settings, tmp_path, capsys):
    """A quota or a window is a count: a fraction, a word or a bool is refused naming the field (never
    truncated: 2.7 events a day was stored as 2), a negative quota too (0 suspends: every event or request
    refused); whole numbers written as text or as ``5e3`` are read."""
    for quota in ("quota_events_per_day", "quota_requests_per_minute"):
        for bad in (-5, 2.5, True, "5"):
            with pytest.raises(TenantError, match=f"tenant acme: {quota} must be a whole number 0..9,223"):
                Tenant("acme", "eu", **{quota: bad})
        assert getattr(Tenant("acme", "eu", **{quota: 0}), quota) == 0  # a suspended tenant
    assert main(["tenants", "add", "acme", "--region", "eu", "--quota-events-per-day", "-5"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "quota_events_per_day must be a whole number 0..9,223,372,036,854,775,807 (0 suspends" in said, said
    assert "On the command line: --quota-events-per-day." in said, "the command line's words"
    assert main(["tenants", "add", "acme", "--region", "eu", "--quota-events-per-day", str(2**63)]) == 2  # no crash
    assert "must be a whole number 0..9,223,372,036,854,775,807" in capsys.readouterr().err
    for window, bad in (("label_window_days", 14.5), ("churn_window_days", True)):  # a Python caller's
        with pytest.raises(TenantError, match=f"{window} must be .* days, a whole number"):
            Tenant("acme", "eu", **{window: bad})
    seed = tmp_path / "tenants.yaml"
    for field, value, words in (
        ("quota_events_per_day", "lots", "quota_events_per_day must be a whole number, got 'lots'"),
        ("quota_events_per_day", "2.7", "quota_events_per_day must be a whole number, got 2.7"),
        ("quota_events_per_day", "1e20", "quota_events_per_day must be a whole number up to"),  # SQLite's integers
        ("quota_events_per_day", "'1e-400'", "quota_events_per_day must be a whole number, got '1e-400'"),  # not 0
        ("quota_events_per_day", "", "quota_events_per_day is empty: give a whole number"),  # a blank lifts nothing
        ("quota_events_per_day", "'1_4'", "quota_events_per_day must be a whole number, got '1_4'"),
        ("quota_events_per_day", "'\u06630'", "quota_events_per_day must be a whole number, got '\u06630'"),
        ("quota_requests_per_minute", "yes", "quota_requests_per_minute must be a whole number, got True \\(YAML"),
        ("label_window_days", "14.5", "label_window_days must be a whole number, got 14.5"),
        ("feature_window_days", "0", "feature_window_days must be 14..364 days"),  # 0 was read as unset
    ):
        seed.write_text(f"- {{tenant_id: acme, region: eu, {field}: {value}}}\n")
        with pytest.raises(TenantError, match=f"tenants.yaml: tenant #1: (tenant acme: )?{words}"):
            seed_from_file(seed, TenantStore(settings))
    seed.write_text("- {tenant_id: acme, region: eu, quota_events_per_day: 5e3, churn_window_days: '28'}\n")
    [acme] = seed_from_file(seed, TenantStore(settings))  # a quota left out: the default
    assert (acme.quota_events_per_day, acme.churn_window_days, acme.quota_requests_per_minute) == (5000, 28, 6000)
    assert main(["tenants", "add", "paused", "--region", "eu", "--quota-requests-per-minute", "0"]) == 0
    capsys.readouterr()
    assert main(["tenants", "list"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("│")}
    assert (
        "5,000,000 / 0 (API" in rows["paused"] and "5,000 / 6,000" in rows["acme"] and "suspended" not in rows["acme"]
    )
    for tenant_id, off in (("paused", ["API"]), ("acme", [])):  # tenants show says it too
        assert main(["tenants", "show", tenant_id]) == 0
        shown = capsys.readouterr()
        assert json.loads(shown.out)["suspended"] == off
        # what an empty model_kinds means, said beside the JSON (on stderr: the JSON stays a seed entry)
        assert json.loads(shown.out)["model_kinds"] == [], shown.out
        assert "model_kinds []: every registered kind (churn, engagement, recommender)" in shown.err, shown.err
        assert "interaction_types []: the platform's (click, purchase, add_to_cart, rating)" in shown.err


def test_a_change_made_meanwhile_is_never_written_over(settings):
    """``tenants add --replace`` and ``tenants seed`` read an entry, change it and store it: the store refuses
    when the entry changed in between (another command's change would silently be undone)."""
    store = TenantStore(settings)
    store.add(Tenant("acme", "eu", min_rating=4))
    read = store.get("acme")
    store.add(dataclasses.replace(read, seen_items="allow"), replace=True, expect=read)  # another command's change
    with pytest.raises(TenantError, match="tenant acme changed while this command ran.*nothing stored: run it again"):
        store.add(dataclasses.replace(read, min_rating=3), replace=True, expect=read)
    assert (store.get("acme").seen_items, store.get("acme").min_rating) == ("allow", 4)
    with pytest.raises(TenantError, match="tenant newco changed while this command ran"):
        store.add(Tenant("newco", "eu"), replace=True, expect=read)  # expected an entry where there is none
    store.add(Tenant("newco", "eu"), replace=True, expect=None)
    with pytest.raises(TenantError, match="tenant newco changed while this command ran"):
        store.add(Tenant("newco", "eu", min_rating=2), replace=True, expect=None)  # one appeared meanwhile
    # a seed's entries go in one transaction: one changed meanwhile stores none of them
    acme, newco = store.get("acme"), store.get("newco")
    store.add(dataclasses.replace(newco, min_rating=5), replace=True, expect=newco)  # another command's change
    changed = [dataclasses.replace(acme, min_rating=1), dataclasses.replace(newco, min_rating=1)]
    with pytest.raises(TenantError, match="tenant newco changed while this command ran"):
        store.add_all(changed, replace=True, expect={"acme": acme, "newco": newco})
    assert (store.get("acme").min_rating, store.get("newco").min_rating) == (4, 5)
    with pytest.raises(TenantError, match="tenant acme given twice in one change"):
        store.add_all([acme, acme], replace=True, expect={})
    with pytest.raises(TenantError, match="^tenant acme already exists"):  # the one that exists, not the list
        store.add_all([Tenant("zeta", "eu"), acme], expect={})
    assert "zeta" not in {t.tenant_id for t in store.list()}
    # tenants seed reports changes against its own read of the tenants: a change since that read stores nothing
    read = {t.tenant_id: t for t in store.list()}
    store.add(dataclasses.replace(read["acme"], min_rating=2), replace=True, expect=read["acme"])
    seed = settings.home / "tenants.yaml"
    seed.write_text("- {tenant_id: acme, seen_items: exclude}\n")
    with pytest.raises(TenantError, match="tenants.yaml: tenant acme changed while this command ran"):
        seed_from_file(seed, store, stored=read)
    assert (store.get("acme").seen_items, store.get("acme").min_rating) == ("allow", 2)


def test_a_tenant_opts_in_to_another_regions_global_model_only_by_its_entry(settings, capsys):
    assert Tenant("acme", "eu").global_model_region == "eu"  # residency: its own region's by default
    assert main(["tenants", "add", "shop", "--region", "us", "--global-region", "eu"]) == 0
    shop = TenantStore(settings).get("shop")
    assert (shop.region, shop.global_region, shop.global_model_region) == ("us", "eu", "eu")
    assert main(["tenants", "add", "bad", "--region", "us", "--global-region", "EU/1"]) == 2
    assert "invalid global_region 'EU/1'" in capsys.readouterr().err
    [entry] = [e for e in audit.entries(settings, "shop") if e.action == "tenant_add"]
    assert entry.detail["global_region"] == "eu"  # the opt-in is audited with the entry
    for sharer, none in ((None, True), ("euro", False)):
        if sharer:  # a tenant of eu that shares its data: eu has a global model to serve shop
            assert main(["tenants", "add", sharer, "--region", "eu"]) == 0
        capsys.readouterr()
        assert main(["tenants", "list"]) == 0
        [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│ shop ")]
        assert "eu (opted in)" in row and ("(none:" in row) == none, row


def test_an_entry_copied_from_tenants_show_seeds_back_unchanged_and_its_derived_keys_are_checked(
    settings, capsys, tmp_path
):
    assert main(["tenants", "add", "acme", "--region", "eu", "--quota-requests-per-minute", "0"]) == 0
    capsys.readouterr()
    assert main(["tenants", "show", "acme"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["suspended"] == ["API"] and shown["source_spec"] is None
    seed = tmp_path / "tenants.json"
    seed.write_text(json.dumps([shown]))
    assert main(["tenants", "seed", str(seed)]) == 0
    assert capsys.readouterr().out == "acme: unchanged\n"
    for key, value, words in (
        ("suspended", [], "suspended is derived from the quotas \\(0 suspends\\): it would be \\['API'\\], not \\[\\]"),
        ("interactions", ["view"], "interactions is derived from interaction_types"),
        ("source_spec", {"format": "csv"}, "source_spec is set by `tenantflow tenants source ID --file SPEC`"),
    ):
        seed.write_text(json.dumps([shown | {key: value}]))
        with pytest.raises(TenantError, match=f"tenants.json: tenant #1: {words}"):
            seed_from_file(seed, TenantStore(settings))


def test_the_readmes_seed_example_onboards_one_tenant_and_suspends_another(settings, capsys, tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme[readme.index("A seed file for `tenants seed`") :].split("```yaml\n", 1)[1].split("```", 1)[0]
    (seed := tmp_path / "tenants.yaml").write_text(example)
    assert main(["tenants", "add", "acme", "--region", "eu"]) == 0
    capsys.readouterr()
    assert main(["tenants", "seed", str(seed)]) == 0
    out = capsys.readouterr().out
    assert "onboarded news-co in region eu (pool)." in out and "quota_requests_per_minute (6000 -> 0)" in out, out
    assert TenantStore(settings).get("news-co").interaction_types == ("click", "view")


def test_a_tenant_that_is_its_regions_first_is_told_so(settings, capsys, tmp_path):
    """A misspelt region would keep a tenant's data apart from its region's, and out of its global model, unseen."""
    assert main(["tenants", "add", "acme", "--region", "eu"]) == 0
    assert "is new" not in capsys.readouterr().out  # the first tenant of all
    assert main(["tenants", "add", "zeta", "--region", "ue"]) == 0
    assert "Region ue is new (so far: eu)." in capsys.readouterr().out
    assert main(["tenants", "add", "beta", "--region", "eu"]) == 0
    assert "is new" not in capsys.readouterr().out
    seed = tmp_path / "tenants.yaml"
    seed.write_text(
        "- {tenant_id: gamma, region: us}\n- {tenant_id: delta, region: eu}\n- {tenant_id: pi, region: us}\n"
    )
    assert main(["tenants", "seed", str(seed)]) == 0
    out = capsys.readouterr().out
    assert "onboarded gamma in region us (pool). Region us is new (so far: eu, ue)." in out
    assert "onboarded delta in region eu (pool).\n" in out and "onboarded pi in region us (pool).\n" in out
    for tenant_id in ("zeta", "gamma", "pi"):  # a removed tenant's region is still known (its data may be there)
        assert main(["tenants", "remove", tenant_id]) == 0
    capsys.readouterr()
    assert main(["tenants", "add", "omega", "--region", "ue"]) == 0
    assert "is new" not in capsys.readouterr().out


def test_cli_add_list_remove(settings, capsys):
    assert main(["tenants", "add", "acme", "--region", "eu", "--share-data", "no"]) == 0
    assert main(["tenants", "add", "Bad/Id", "--region", "eu"]) == 2
    assert "invalid tenant id" in capsys.readouterr().err
    assert main(["tenants", "add", "news", "--region", "eu", "--model-kinds", "recommender,nope"]) == 2
    assert "unknown model kind 'nope'" in capsys.readouterr().err
    assert main(["tenants", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"share_data": false' in out and '"tenant_id": "acme"' in out
    assert main(["tenants", "remove", "acme"]) == 0
    assert "its id is retired" in capsys.readouterr().out
    assert TenantStore(settings).list() == []
    assert main(["tenants", "show", "acme"]) == 2
    assert "unknown tenant 'acme'" in capsys.readouterr().err
    assert main(["tenants", "add", "acme", "--region", "eu"]) == 2  # a removed id is never reused
    assert "was removed on" in capsys.readouterr().err


def test_seed_checks_every_entry_before_storing_any(settings, tmp_path, capsys):
    seed = tmp_path / "tenants.yaml"
    seed.write_text(
        "- {tenant_id: acme, region: eu}\n- {tenant_id: news, region: eu, model_kinds: [recommender, nope]}\n"
    )
    assert main(["tenants", "seed", str(seed)]) == 2
    err = capsys.readouterr().err
    assert "tenants.yaml: tenant #2: unknown model kind 'nope'" in err
    assert TenantStore(settings).list() == [], "nothing stored when one entry is bad"
    seed.write_text("- {region: eu}\n")
    assert main(["tenants", "seed", str(seed)]) == 2
    assert "tenant #1: missing field 'tenant_id'" in capsys.readouterr().err
    seed.write_text("- {tenant_id: acme, region: eu}\n")
    assert main(["tenants", "seed", str(seed)]) == 0
    assert [t.tenant_id for t in TenantStore(settings).list()] == ["acme"]


def test_cli_warns_about_unknown_and_renamed_variables(settings, monkeypatch, capsys):
    monkeypatch.setenv("TENANTFLOW_API_PORT", "9000")
    assert main(["tenants", "list", "--json"]) == 0
    assert "warning: TENANTFLOW_API_PORT is no longer read: it is now TENANTFLOW_SERVE_PORT" in capsys.readouterr().err


def test_status_prints_a_table_with_a_row_per_tenant_and_what_it_lacks(settings, capsys):
    for tid, region in (("shop", "eu"), ("films", "us")):
        assert main(["tenants", "add", tid, "--region", region]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("│ shop ") == 1 and shown.count("│ films ") == 1, shown  # one table row each
    assert "eu · pool" in shown and "us · pool" in shown
    assert "UNHEALTHY" in shown and "no model trained yet" in shown and "not monitored yet" in shown


def test_status_says_why_a_refused_challenger_does_not_serve():
    from ml.ops.status import model_lines

    m = {"champion_version": "1", "trained_on": "tenant", "family": "ease", "metrics": {"ndcg_at_10": 0.25}}
    m |= {"baseline_metrics": {"ndcg_at_10": 0.1}, "challenger_version": "2", "challenger_reason": "below the margin"}
    assert model_lines("recommender", m) == [  # last: the baseline is the champion's
        "recommender: champion v1 (ease, tenant), challenger v2",
        "  ndcg_at_10=0.250",
        "  baseline ndcg_at_10=0.100",
        "  v2 refused: below the margin",
    ]


def test_models_list_says_why_a_challenger_does_not_serve():
    from ml.ops.cli.models import judged_cell, metrics_cell

    m = {"champion_version": "1", "challenger_version": None, "metrics": {"ndcg_at_10": 0.25, "map_at_10": 0.1}}
    assert metrics_cell(m) == "ndcg_at_10=0.250, map_at_10=0.100"
    m |= {"challenger_version": "2", "challenger_reason": "challenger (ease, tenant): not above the margin"}
    assert (
        metrics_cell(m)
        == "ndcg_at_10=0.250, map_at_10=0.100\nv2 refused: challenger (ease, tenant): not above the margin"
    )
    first = {"champion_version": None, "challenger_version": "1", "metrics": {}, "challenger_reason": "loses"}
    assert metrics_cell(first) == "v1 refused: loses"  # no champion yet: the refusal alone
    young = {"champion_version": "1", "challenger_version": None, "metrics": {}, "gate_reason": "first champion"}
    assert metrics_cell(young) == "none: first champion"  # taken without holdout figures: why
    # what the figures stand on: a ranking's users and protocol, else the holdout's examples
    assert judged_cell(m | {"holdout": {"users": 1792, "protocol": "temporal"}}) == "1,792 users, temporal"
    assert judged_cell({"metrics": {"roc_auc": 0.7}, "holdout_rows": 2129}) == "2,129 examples"
    ranked = {"metrics": {"ndcg_at_10": 0.36}, "holdout_rows": 384567}  # a global recommender's: no users logged
    assert judged_cell(ranked, ranks=True) == "384,567 (user, item) pairs"
    assert metrics_cell(young | {"gate_reason": None}) == "none"
    assert judged_cell(young | {"holdout_rows": 0}) == judged_cell(young) == "-"


def test_status_says_a_tenant_is_not_monitored_yet_whatever_else_its_monitoring_cell_shows():
    from ml.ops.status import _monitoring_lines

    row = {"drift": {"last_checked_at": None}, "ingest_warnings": [], "quarantined": {"null_user_id": 3}}
    assert _monitoring_lines(row) == ["not monitored yet", "quarantined by reason: null_user_id=3"]
    row["quarantine_path"] = "var/quarantine/region=eu/tenant=acme"  # where its rows are, with their raw text
    assert _monitoring_lines(row)[-1] == "quarantined rows: var/quarantine/region=eu/tenant=acme"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["tenants", "show"], "Missing argument 'tenant_id'"),
        (["ingest"], "Missing option '--start'"),
        (["train", "--bogus"], "No such option: --bogus"),
    ],
)
def test_a_usage_error_prints_the_usage_and_the_message_never_a_traceback(settings, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Usage: tenantflow" in err and "Traceback" not in err, err


def test_a_commands_help_prints_each_paragraph_for_the_terminal_to_wrap_not_the_docstrings_line_breaks(
    settings, capsys, monkeypatch
):
    """Typer 0.29 kept a docstring's line breaks after its first paragraph: ragged lines on any terminal."""
    monkeypatch.setenv("COLUMNS", "250")  # wider than the paragraph's every source line, narrower than the paragraph
    assert main(["features", "build", "--help"]) == 0
    out = capsys.readouterr().out
    assert "a dbt node other than a data test failed (a seed, a snapshot, a model)" in out, out
    assert "Usage: tenantflow features build" in out and "--rebuild-from" in out
    # a flag takes no value: no type beside it (Typer 0.29 printed ``--json <bool>``), an option that does has one
    assert main(["status", "--help"]) == 0
    rows = {line.split()[1]: line.split()[2] for line in capsys.readouterr().out.splitlines() if "│ --" in line}
    assert rows["--json"] == "The" and rows["--help"] == "Show" and rows["--tenant"].startswith("<"), rows
    assert main(["--help"]) == 0  # the app's help: the module docstring's first paragraph, without its reST quotes
    assert "tenantflow: onboard tenants" in (shown := capsys.readouterr().out) and "``" not in shown, shown
