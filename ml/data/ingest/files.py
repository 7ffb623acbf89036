"""What a landing file is before it is parsed: its format, compression, text encoding and CSV dialect.

Tenants send what their tools write, so each of these is found out per file, never assumed:

- **format** from the name: ``.csv``/``.tsv``/``.tab`` (delimited text), ``.jsonl``/``.ndjson``
  (JSON lines), ``.json`` (a JSON array of events when its first character is ``[``, JSON lines
  otherwise), ``.parquet``; optionally compressed as ``.gz``, ``.bz2`` or ``.zst``. Any other file
  is listed as ``unsupported_file`` in the day's problems, never passed over in silence.
- **encoding**: UTF-8, a byte-order mark stripped (UTF-16 when its byte-order mark says so). Delimited text that is not UTF-8 is read as
  cp1252 (what Excel on Windows writes as "CSV"; a superset of Latin-1's printable characters) when
  it decodes as such, else the file is ``undecodable_file``. JSON is UTF-8 by definition (RFC 8259
  §8.1): a JSON line that is not UTF-8 becomes ``malformed_line`` with its bytes kept as ``\\xNN``.
- **delimiter** of delimited text: whichever of ``,`` ``;`` tab ``|`` occurs most in the header line
  (a comma when none does).

:func:`plain_copy` gives DuckDB a plain UTF-8 file to parse: the original itself in the common case
(uncompressed UTF-8 without a byte-order mark), so that case costs nothing extra.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

COMPRESSIONS = (".gz", ".bz2", ".zst")
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
SUPPORTED = "CSV/TSV, JSON lines, a JSON array or Parquet, optionally compressed as .gz, .bz2 or .zst"
DELIMITERS = (",", ";", "\t", "|")
TEXT_FALLBACK = "cp1252"  # delimited text that is not UTF-8
_CHUNK = 1 << 20


class UnreadableFile(ValueError):
    """A landing file that cannot be parsed at all; ``reason`` names the kind (``undecodable_file`` ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FileKind:
    """``format``: ``csv`` | ``jsonl`` | ``json`` | ``parquet``; ``compression``: its suffix or None."""

    format: str
    compression: str | None


def file_kind(path: Path, fmt: str | None = None) -> FileKind | None:
    """The format (``fmt`` if given, a source spec's) and compression a file's name declares,
    or None when Tenantflow does not read it."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in COMPRESSIONS else None
    fmt = fmt or (FORMATS.get(suffixes[-1]) if suffixes else None)
    return FileKind(fmt, compression) if fmt else None


def _open_bytes(path: Path, kind: FileKind) -> io.BufferedIOBase | IO[bytes]:
    """The file's bytes, decompressed."""
    if kind.compression == ".gz":
        return gzip.GzipFile(path, "rb")
    if kind.compression == ".bz2":
        return bz2.open(path, "rb")
    if kind.compression == ".zst":
        return io.BytesIO(_unzstd(path))
    return path.open("rb")


def _unzstd(path: Path) -> bytes:
    """A whole ``.zst`` file's content; ValueError when it is corrupt or truncated (zstandard's
    stream reader returns a truncated frame's prefix without a word)."""
    import zstandard

    dobj = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = dobj.decompress(path.read_bytes())
    except zstandard.ZstdError as exc:
        raise ValueError(str(exc)) from exc
    if not dobj.eof:
        raise ValueError("the file ends inside a zstd frame (truncated)")
    return out


def _is_plain_utf8(path: Path) -> bool:
    """Uncompressed, no byte-order mark, every byte valid UTF-8 (read in 1 MiB chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        first = f.read(_CHUNK)
        if first.startswith(codecs.BOM_UTF8):
            return False
        try:
            decoder.decode(first)
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def plain_copy(path: Path, kind: FileKind, workdir: Path, encoding: str | None = None) -> tuple[Path, str]:
    """A plain UTF-8 file with ``path``'s text, and the encoding it was read in.

    ``path`` itself when it already is one; else a decompressed, transcoded copy in ``workdir``
    (the caller's temporary folder). Parquet is returned as is (decompressed if need be).
    ``encoding`` (a source spec's) replaces the UTF-8-then-cp1252 rule.

    Raises:
        UnreadableFile: delimited text that is neither UTF-8 nor cp1252, or a corrupt compressed file.
    """
    declared = encoding is not None and codecs.lookup(encoding).name != "utf-8"
    if kind.compression is None and (kind.format == "parquet" or (not declared and _is_plain_utf8(path))):
        return path, "utf-8"
    out = workdir / (path.name + ".plain")
    try:
        with _open_bytes(path, kind) as src:
            if kind.format == "parquet":
                with open(out, "wb") as dst:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        dst.write(chunk)
                return out, "binary"
            data = src.read()
    except (OSError, EOFError, ValueError) as exc:  # gzip/bz2/zstd errors derive from these
        raise UnreadableFile("unreadable_file", f"{path.name}: cannot decompress ({kind.compression}): {exc}") from exc
    if encoding is not None and declared:
        try:
            text, used = data.decode(encoding).removeprefix("\ufeff"), str(encoding)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                "undecodable_file", f"{path.name}: not {encoding} (byte {exc.start}), as its source spec says"
            ) from exc
    else:
        text, used = _decode(data, kind, path)
    out.write_text(text, encoding="utf-8", newline="")
    return out, used


def _decode(data: bytes, kind: FileKind, path: Path) -> tuple[str, str]:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # what Excel's "Unicode text" writes
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise UnreadableFile("undecodable_file", f"{path.name}: not UTF-16 though it starts like it") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if kind.format != "csv":  # JSON: the lines that are not UTF-8 become malformed, bytes kept as \xNN
            return "\n".join(_json_line(line) for line in data.split(b"\n")), "utf-8 (some lines not)"
        try:
            return data.decode(TEXT_FALLBACK), TEXT_FALLBACK
        except UnicodeDecodeError:
            raise UnreadableFile(
                "undecodable_file",
                f"{path.name}: neither UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r}) nor "
                f"{TEXT_FALLBACK}; re-export it as UTF-8",
            ) from exc


def _json_line(line: bytes) -> str:
    """A line's text; a line that is not UTF-8 keeps its bytes as ``\\xNN`` (never valid JSON, so malformed)."""
    return line.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class Dialect:
    """A delimited file's delimiter and its header's column names (as written)."""

    delimiter: str
    header: list[str]


def sniff_dialect(path: Path, delimiter: str | None = None, names: list[str] | None = None) -> Dialect:
    """The delimiter (``delimiter`` if given, a source spec's) of a plain UTF-8 delimited file and
    its header, from its first line; ``names`` (a source spec's ``header``) is the header of a file
    without a header line."""
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
    line = first.rstrip("\r\n")
    delimiter = delimiter or max(DELIMITERS, key=lambda d: (line.count(d), d == ","))
    if names is not None:
        return Dialect(delimiter, list(names))
    header = next(csv.reader(io.StringIO(line), delimiter=delimiter), []) if line else []
    return Dialect(delimiter, header)


def record_lines(plain: Path, records: int, rejected: np.ndarray, header_lines: int = 1) -> np.ndarray | None:
    """The file line number (1 = the first line: the header, if the file has one) of each of a
    delimited file's ``records`` parsed records, in order, given the ``rejected`` lines DuckDB set
    aside; None when a record spans several lines (a quoted line break), where lines and records
    cannot be matched this way.

    Data lines are the ones after the ``header_lines`` (1, or 0 for a file without a header line)
    that are not blank and not rejected. DuckDB numbers only the lines it rejects, so the lines
    are counted here: one ``bytes.count`` when every line is a record (~0.03 s per 100 MB), else a
    NumPy scan for blank lines (~0.1 s per 100 MB).
    """
    raw = plain.read_bytes()
    lines = raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)
    if lines == records + header_lines and not len(rejected):  # the common case: line = record + header
        return np.arange(1 + header_lines, records + 1 + header_lines)
    data = np.frombuffer(raw, dtype=np.uint8)
    breaks = np.flatnonzero(data == 10)
    if len(data) and data[-1] != 10:  # a last line without a line break
        breaks = np.append(breaks, len(data))
    starts = np.concatenate(([0], breaks[:-1] + 1))
    length = breaks - starts
    blank = (length == 0) | ((length == 1) & (data[np.minimum(starts, len(data) - 1)] == 13))
    numbers = np.arange(1, len(breaks) + 1)
    found = numbers[~blank & (numbers > header_lines) & ~np.isin(numbers, rejected)]  # noqa: TID251 (integers)
    return found if len(found) == records else None
