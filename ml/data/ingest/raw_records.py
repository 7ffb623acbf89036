"""Quarantined rows' raw lines, read again from the landing file that carried them.

The reader keeps a row's raw record as it parses only where it costs nothing extra or there is
no line to go back to (a tenant's own export, a JSON array's elements, a history import's rows).
A file in the landing contract is parsed without it (copying every line costs ~0.7 s per 1M
JSON lines): the lines of the few rows that end up quarantined are read here instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ml.core import sealed_files
from ml.core.settings import Settings
from ml.data.ingest.files import UnreadableFile, file_kind, plain_copy
from ml.data.ingest.spec import DEFAULT, SourceSpec


def raw_lines(path: Path, spec: SourceSpec, numbers: set[int], settings: Settings, tenant_id: str) -> dict[int, str]:
    """The text of lines ``numbers`` (1-based) of a delimited or JSON landing file (sealed or not),
    decoded as it was read: the raw lines of its quarantined rows (read again only for files that
    have some). Empty for Parquet, or a file that can no longer be read."""
    kind = file_kind(path, spec.format)
    if kind is None or kind.format == "parquet" or not numbers or not path.exists():
        return {}
    last, found = max(numbers), {}
    with tempfile.TemporaryDirectory(prefix="tenantflow-raw-") as workdir:
        if sealed_files.is_sealed(path):
            sealed_files.open_plain(path, Path(workdir) / path.name, settings, tenant_id)
            path = Path(workdir) / path.name
        try:
            plain, _ = plain_copy(path, kind, Path(workdir), spec.encoding)
        except UnreadableFile:
            return {}
        with open(plain, encoding="utf-8", newline="") as f:
            for number, line in enumerate(f, start=1):
                if number in numbers:
                    found[number] = line.rstrip("\r\n")
                if number >= last:
                    break
    return found


def with_raw_lines(rejected: pd.DataFrame, folder: Path, settings: Settings, tenant_id: str) -> pd.DataFrame:
    """``rejected`` rows with ``_raw`` set, where the reader left it null, to the line of the
    landing file in ``folder`` that carried them (a file read with the landing contract, the only one whose rows
    the reader leaves without it: only its quarantined rows' lines are read again)."""
    need = rejected["_raw"].isna().to_numpy()
    if not need.any():
        return rejected
    raw = rejected["_raw"].astype(object).to_numpy(copy=True)
    for name, rows in rejected[need].groupby("source_file").indices.items():
        positions = np.flatnonzero(need)[rows]
        numbers = rejected["_line_no"].to_numpy()[positions]
        lines = raw_lines(folder / name, DEFAULT, set(numbers.tolist()), settings, tenant_id)
        raw[positions] = [lines.get(n) for n in numbers]
    return rejected.assign(_raw=raw)
