"""Great Expectations' Data Docs: rendered from the validation results Tenantflow keeps, readable offline.

GX 1.x's page templates load their scripts, styles and fonts from public CDNs (jsDelivr, unpkg,
cdnjs, Bootstrap's CDN) and its logo from GX's own S3 bucket. Offline, the index lists nothing
(bootstrap-table draws its table) and the pages lose their layout. :func:`build_data_docs` renders
the site with GX, then points every such reference at the same library from npm — pinned in
``ml/data/data_docs_assets/package-lock.json``, installed beside the venv by ``make venv``
(:attr:`~ml.core.settings.Settings.data_docs_assets`) — copied under the site's
``static/vendor/``, and GX's logo at the copy GX already puts in ``static/images/`` (GX's own
references to ``static/``, one of which is a folder short on validation pages, are made relative
to each page's depth). A page that
still loads something from the internet (a GX upgrade with a new CDN) is logged by URL.

Where npm's release differs from the CDN's: popper.js 1.16.1 for 1.12.9 (Bootstrap 4.3.1 asks
for ^1.14.7), and bootstrap-table's filter-control style of 1.19.1 for 1.19.0. The pins' Subresource
Integrity hashes are dropped with the URLs they were for.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.core import atomic
from ml.core.settings import Settings, get_settings
from ml.data.quality import gx_modules

log = logging.getLogger(__name__)

# the URLs GX 1.x's templates (render/view/templates/*.j2) load -> the npm package's file
CDN_FILES: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/dist/umd/popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free/css/all.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css"
    ),
}
_UNPKG_TABLE = re.compile(r"https://unpkg\.com/bootstrap-table@1\.19\.[01]/(dist/[\w./-]+)")
# what a copied file refers to beside itself (Font Awesome's CSS: ../webfonts/)
_WITH_FOLDER = {"@fortawesome/fontawesome-free/css/all.min.css": "@fortawesome/fontawesome-free/webfonts"}
_LOADING_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_TAG_URL = re.compile(r'\b(?:src|href)="(https?://[^"]+)"')
_STATIC_REF = re.compile(r'\b(src|href)="(?:\.\.?/)*static/([^"]+)"')
_SRI = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')
_GX_IMAGE = re.compile(r"https://great-expectations-web-assets\.s3\.[\w.-]+\.amazonaws\.com/([\w.-]+)(?:\?[^\"'\s)]*)?")


def build_data_docs(settings: Settings | None = None) -> Path:
    """Render GX Data Docs (HTML) from every validation result Tenantflow kept; return the index page.

    Each suite is written to the file context from its newest result, so the site has a page per
    suite beside one per validation. The site is a function of the kept results alone: it is
    rendered into a new GX project beside the old one, which it then replaces (two renames, under
    a lock on the folder), so nothing deleted since (a purged tenant's results and suites) stays
    on a page, and a reader never finds the site half-written. It is readable offline when the
    pinned assets are installed (:func:`offline_assets`); without them it is left loading from
    the CDNs, with a warning naming ``make venv``.
    """
    from filelock import FileLock

    settings = settings or get_settings()
    gx_home = settings.stores.gx_home
    gx_home.parent.mkdir(parents=True, exist_ok=True)
    site = data_docs_index(settings).relative_to(gx_home)
    with FileLock(gx_home.with_name(gx_home.name + ".lock")):
        fresh = Path(tempfile.mkdtemp(prefix=f".{gx_home.name}-new-", dir=gx_home.parent))
        try:
            _render(settings.stores.gx_results, fresh)
            if settings.data_docs_assets.is_dir():
                offline_assets((fresh / site).parent, settings.data_docs_assets)
            else:
                log.warning(
                    "Data Docs load their scripts and styles from CDNs (no internet, no tables): %s is missing; "
                    "`make venv` installs it (npm ci of ml/data/data_docs_assets/)",
                    settings.data_docs_assets,
                )
            old = gx_home.with_name(f".{gx_home.name}-old-{os.getpid()}")
            if gx_home.exists():
                gx_home.rename(old)
            fresh.rename(gx_home)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)  # (gone once renamed)
    index = gx_home / site
    log.info("Data Docs: %s", index)
    return index


def _render(results: Path, project: Path) -> None:
    """Write every kept validation result (and each suite, from its newest) into a new GX file
    context at ``project``, and build its Data Docs site there."""
    gx, _ = gx_modules()
    from great_expectations.core.expectation_validation_result import (
        expectationSuiteValidationResultSchema,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    ctx = gx.get_context(mode="file", project_root_dir=str(project))
    newest: dict[str, tuple[float, dict[str, Any]]] = {}  # suite -> its newest result: the suite's page
    for path in sorted(results.rglob("*.json")):
        data = json.loads(path.read_text())
        suite_name, written = data.get("suite_name", path.parent.parent.name), path.stat().st_mtime
        if written >= newest.get(suite_name, (float("-inf"), {}))[0]:
            newest[suite_name] = (written, data)
        # the page's "Data asset" comes from meta.batch_spec, which a dataframe batch leaves without
        # one ("Data asset: None"): name the tenant and what was checked
        meta = data.setdefault("meta", {})
        asset = (meta.get("active_batch_definition") or {}).get("data_asset_name") or path.parent.parent.name
        meta.setdefault("batch_spec", {}).setdefault("data_asset_name", f"{path.parent.name} · {asset}")
        run_time = datetime.fromtimestamp(written, tz=UTC)
        # a dataframe batch's result has no run id (the page said "Run Name: __none__"): the file's
        # name and the time it was written
        run_id = meta.get("run_id") if isinstance(meta.get("run_id"), dict) else {}
        meta["run_id"] = {
            "run_name": run_id.get("run_name") or path.stem,
            "run_time": run_id.get("run_time") or run_time.isoformat(),
        }
        result = expectationSuiteValidationResultSchema.load(data)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
            run_id=RunIdentifier(run_name=path.stem, run_time=run_time),
            batch_identifier=path.parent.name.replace("=", "_"),
        )
        ctx.validation_results_store.set(key, result)
    for suite_name, (_, data) in newest.items():
        ctx.suites.add_or_update(_suite(gx, suite_name, data))
    ctx.build_data_docs()


def _suite(gx: Any, name: str, result: dict[str, Any]) -> Any:
    """The suite a kept result was validated against (its expectations' configurations, without
    the batch they ran on), so the site's suite pages exist: the contract each tenant's data meets."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectations = []
    for r in result.get("results", []):
        cfg = r.get("expectation_config") or {}
        kwargs = {k: v for k, v in (cfg.get("kwargs") or {}).items() if k != "batch_id"}
        config = ExpectationConfiguration(
            type=cfg["type"], kwargs=kwargs, meta=cfg.get("meta"), severity=cfg.get("severity", "critical")
        )
        expectations.append(config.to_domain_obj())
    return gx.ExpectationSuite(name=name, expectations=expectations)


def data_docs_index(settings: Settings) -> Path:
    """Where :func:`build_data_docs` writes the Data Docs' front page."""
    return settings.stores.data_docs_index


def offline_assets(site: Path, node_modules: Path) -> list[str]:
    """Point every page of a GX Data Docs site at local copies of what it loads from the internet.

    Args:
        site: the site's folder (``index.html``, ``static/``, ``validations/``).
        node_modules: the installed npm packages (``ml/data/data_docs_assets/package.json``).

    Returns:
        The URLs pages still load from the internet (each also logged as a warning): none with
        the GX release these templates were read from.

    Raises:
        FileNotFoundError: an npm package's file is missing (an install that did not finish:
            ``make venv`` installs them again).
    """
    static = site / "static"
    remote: set[str] = set()
    for page in sorted(site.rglob("*.html")):
        _offline_page(page, static, node_modules, remote)
    for url in sorted(remote):
        log.warning("Data Docs still load %s from the internet (not among ml/data/data_docs.py's CDN_FILES)", url)
    return sorted(remote)


def _offline_page(page: Path, static: Path, node_modules: Path, remote: set[str]) -> None:
    to_static = Path(os.path.relpath(static, page.parent)).as_posix()
    text = page.read_text(encoding="utf-8")
    new = _LOADING_TAG.sub(lambda tag: _local_tag(tag.group(0), to_static, static, node_modules, remote), text)
    new = _GX_IMAGE.sub(lambda m: f"{to_static}/images/{_gx_image(static, m.group(1))}", new)
    if new != text:
        atomic.write_text(page, new)


def _local_tag(tag: str, to_static: str, static: Path, node_modules: Path, remote: set[str]) -> str:
    # GX's favicon link on a validation page is one folder short (render/view/templates/favicon.j2):
    # every reference to the site's static folder is made relative to the page's own depth
    tag = _STATIC_REF.sub(lambda m: f'{m.group(1)}="{to_static}/{m.group(2)}"', tag)
    found = _TAG_URL.search(tag)
    if found is None or _GX_IMAGE.match(found.group(1)):
        return tag
    url = found.group(1)
    table = _UNPKG_TABLE.fullmatch(url)
    file = CDN_FILES.get(url) or (f"bootstrap-table/{table.group(1)}" if table else None)
    if file is None:
        remote.add(url)
        return tag
    _vendor(file, static, node_modules)
    return _SRI.sub("", tag.replace(url, f"{to_static}/vendor/{file}"))


def _vendor(file: str, static: Path, node_modules: Path) -> None:
    """Copy one package file (and the folder it refers to) under ``static/vendor/``, once."""
    for name in (file, _WITH_FOLDER.get(file)):
        if name is None or (static / "vendor" / name).exists():
            continue
        source, target = node_modules / name, static / "vendor" / name
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing: `make venv` installs GX Data Docs' assets (npm ci)")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def _gx_image(static: Path, name: str) -> str:
    """GX's copy of an image of its S3 bucket in the site (its logo), or the logo."""
    return name if (static / "images" / name).is_file() else "logo-long.png"
