"""Which code a model version's ``manifest_hash`` stands for: dbt's models' files and the ``ml`` code its Python
models import (how candidates are scored changes their data as a model's SQL does)."""

from __future__ import annotations

from ml.data import dbt


def test_the_ml_package_a_python_model_imports_counts_with_the_models_files(tmp_path, monkeypatch):
    package = tmp_path / "ml" / "models" / "recsys"
    package.mkdir(parents=True)
    (package / "candidates.py").write_text("EASE_COLUMNS = 6_000\n")
    (package / "families.py").write_text("class EASE: ...\n")
    monkeypatch.setattr(dbt, "CODE_ROOT", tmp_path)
    code = "def model(dbt, session):\n    from ml.models.recsys.candidates import score_candidates\n"
    manifest = {
        "nodes": {
            "model.tenantflow.history": {"checksum": {"checksum": "py1"}, "language": "python", "raw_code": code},
            "model.tenantflow.user_features": {"checksum": {"checksum": "sql1"}, "language": "sql", "raw_code": ""},
            "test.tenantflow.not_null": {"checksum": {"checksum": "t1"}, "language": "sql"},
        }
    }
    before = dbt.manifest_hash(manifest)
    assert dbt.manifest_hash(manifest) == before  # stable
    (package / "families.py").write_text("class EASE:  # fitted on fewer columns\n    ...\n")  # a module it uses
    after = dbt.manifest_hash(manifest)
    assert after != before
    manifest["nodes"]["test.tenantflow.not_null"]["checksum"]["checksum"] = "t2"  # a data test is not feature code
    assert dbt.manifest_hash(manifest) == after
    manifest["nodes"]["model.tenantflow.user_features"]["checksum"]["checksum"] = "sql2"
    assert dbt.manifest_hash(manifest) != after
