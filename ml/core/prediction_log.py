"""The API's prediction log as files: JSON lines, sealed with the tenant's key for a silo tenant.

One file per flush of the API (:mod:`ml.serving.prediction_log`) and tenant, under
``prediction_log/region=R/tenant=T/date=D/part-<HHMMSS>-<id>.jsonl``, a record per line; a silo
tenant's file is sealed (:mod:`ml.core.sealed_files`). A first version wrote a silo tenant's
records as encrypted Parquet through DuckDB on every flush; under the flood test of
``tests/serving/test_api.py`` (the silo tenant flooding) the other tenant's p99 went from 0.012 s
to 0.088 s; sealing a flush's lines costs microseconds. The monitor reads either through
:meth:`ServedLog.relation`, which records the log as one of the reader's lineage inputs
(:mod:`ml.core.lineage`); erasure through :func:`read_records` and :func:`rewrite_records`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.core import atomic, lineage, sealed_files
from ml.core.settings import Settings

PATTERN = "*.jsonl"
# what to do with a sealed file that does not open although the key is the one it was sealed with:
# the API wrote it, so no tenant can send it again
IF_DAMAGED = "put the file back from a backup, or delete it: its answers then leave the tenant's online live metrics"


def encode(records: list[dict[str, Any]], key: bytes | None) -> bytes:
    """A prediction-log file's bytes: the records as JSON lines, sealed with a silo tenant's ``key``
    (:func:`ml.core.sealed_files.writer_key`; None: plain)."""
    data = b"".join(json.dumps(r, separators=(",", ":"), default=str).encode() + b"\n" for r in records)
    return data if key is None else sealed_files.seal_bytes(data, key)


def read_records(path: Path, settings: Settings, tenant_id: str) -> list[dict[str, Any]]:
    """The records of one prediction-log file, sealed or not.

    Raises:
        TenantKeyError: a sealed file without the tenant's key, or cut short or changed.
    """
    lines = sealed_files.read_bytes(path, settings, tenant_id, if_damaged=IF_DAMAGED).splitlines()
    return [json.loads(line) for line in lines if line]


def rewrite_records(path: Path, records: list[dict[str, Any]], settings: Settings, tenant_id: str) -> None:
    """Replace one prediction-log file with ``records`` (durably; a silo tenant's sealed); none: removed."""
    if not records:
        path.unlink()
        return
    key = sealed_files.writer_key(settings, tenant_id)
    atomic.write_bytes(path, encode(records, key), durable=True)


def seal(settings: Settings, region: str, tenant_id: str) -> int:
    """Seal a silo tenant's prediction-log files written before its log was sealed (the API never
    changes a file it wrote); returns how many."""
    plain = [p for p in files(settings, region, tenant_id) if not sealed_files.is_sealed(p)]
    if plain:
        key = sealed_files.writer_key(settings, tenant_id)
        assert key is not None, f"tenant {tenant_id} is not a silo tenant"
        for path in plain:
            sealed_files.seal_file(path, key)
    return len(plain)


@dataclass(frozen=True)
class ServedLog:
    """A tenant's prediction-log files: ``plain`` ones DuckDB reads as they are, ``sealed`` ones
    opened with the tenant's key (``settings``, ``tenant_id``) when read; ``dataset``: the log in
    the lineage record, noted as an input by every reader of :meth:`relation`."""

    plain: tuple[str, ...]
    sealed: tuple[Path, ...] = ()
    tenant_id: str = ""
    settings: Settings | None = field(default=None, compare=False, repr=False)
    dataset: lineage.LineageDataset | None = field(default=None, compare=False, repr=False)

    def relation(self, con: Any, columns: dict[str, str]) -> str:
        """SQL of a relation of every record with ``columns`` (name -> DuckDB type, e.g.
        ``VARCHAR[]``) on ``con``; sealed files' records are opened into an Arrow table registered
        on ``con`` as ``_served_log_sealed``.

        Raises:
            TenantKeyError: a sealed file does not open (no key, not its key, or damaged); the
                message names the tenant, the file and what to do.
        """
        spec = ", ".join(f"'{c}': '{t}'" for c, t in columns.items())
        parts = []
        if self.plain:
            files = ", ".join(f"'{_quoted(p)}'" for p in self.plain)
            parts.append(f"select * from read_json([{files}], format = 'newline_delimited', columns = {{{spec}}})")
        if self.sealed:
            con.register("_served_log_sealed", self._sealed_table(con, columns))
            parts.append("select * from _served_log_sealed")
        if self.dataset is not None:
            lineage.record(inputs=[self.dataset])
        return "(" + " union all by name ".join(parts) + ")"

    def _sealed_table(self, con: Any, columns: dict[str, str]) -> Any:
        """The sealed files' records as Arrow, typed as DuckDB types them (parsed by pyarrow's JSON reader)."""
        import pyarrow as pa
        import pyarrow.json as pj

        assert self.settings is not None, "a ServedLog with sealed files carries the settings"
        schema = con.execute(f"select * from (select {_nulls(columns)}) limit 0").fetch_arrow_table().schema
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        tables = [schema.empty_table()]
        for path in self.sealed:  # one file's text at a time; only the columns asked for are kept
            data = sealed_files.read_bytes(path, self.settings, self.tenant_id, if_damaged=IF_DAMAGED)
            if data.strip():
                tables.append(pj.read_json(io.BytesIO(data), parse_options=options).select(schema.names))
        return pa.concat_tables(tables).cast(schema)


def served_log(settings: Settings, region: str, tenant_id: str) -> ServedLog | None:
    """A tenant's prediction log (:class:`ServedLog`), or None when it has no file."""
    found = files(settings, region, tenant_id)
    if not found:
        return None
    store = settings.stores.prediction_log
    dataset = lineage.file_dataset(store.tenant_dir(region, tenant_id), "predictions", region, [tenant_id])
    sealed = tuple(p for p in found if sealed_files.is_sealed(p))
    if not sealed:  # one glob: a day holds a file per second the API answered
        return ServedLog((store.glob(region, tenant_id, PATTERN),), dataset=dataset)
    plain = tuple(str(p) for p in found if p not in sealed)
    return ServedLog(plain, sealed, tenant_id, settings, dataset)


def files(settings: Settings, region: str, tenant_id: str) -> list[Path]:
    """Every prediction-log file of a tenant."""
    return settings.stores.prediction_log.files(region, tenant_id, PATTERN)


def _nulls(columns: dict[str, str]) -> str:
    return ", ".join(f'cast(null as {t}) as "{c}"' for c, t in columns.items())


def _quoted(text: str) -> str:
    return text.replace("'", "''")
