"""A silo tenant's files that are not Parquet, sealed with its key: landing files and the prediction log.

The webhook, history imports and the API's prediction log write a silo tenant's files sealed;
the files the tenant drops itself (CSV, JSON, Parquet, compressed or not) arrive as it wrote them
and are sealed in place once ingested as they are and unchanged for an hour
(:func:`ml.data.ingest.landing.seal_landing`). Readers decide by the file's first bytes,
so a file not sealed yet reads as it is; names and modification times are kept, so a sealed file
is the same landing file to everything that lists, orders or names them.

A sealed file is ``MAGIC`` followed by a Tink streaming AEAD ciphertext (AES-256-GCM-HKDF with
1 MiB segments, https://developers.google.com/tink/streaming-aead; a random salt gives each file
its own key, each segment is authenticated, and a truncated, reordered or extended file fails to
open), with ``MAGIC`` as associated data. Tink's key is derived from the tenant's key
(:func:`ml.core.tenant_keys.silo_key`) by HKDF-SHA256 with ``info = b"tenantflow sealed files v1"``.
Sealing and opening cost far less than a landing file's parse (``benchmarks/encryption.py``).
"""

from __future__ import annotations

import hashlib
import io
import os
from functools import cache
from pathlib import Path
from typing import IO, Any

from ml.core import atomic
from ml.core.settings import Settings
from ml.core.tenant_parquet import TenantKeyError, reader_tenant_key

MAGIC = b"TFSEAL1\n"
# what to do with a landing file that does not open although the key is the one it was sealed with
RESEND = "have the tenant send the file again"
_INFO = b"tenantflow sealed files v1"
_SEGMENT = 1 << 20
_CHUNK = 1 << 20


def is_sealed(path: Path) -> bool:
    """Whether a file is sealed (starts with ``MAGIC``)."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def writer_key(settings: Settings, tenant_id: str) -> bytes | None:
    """The key a new file of this tenant is sealed with (a silo tenant's; generated on first use by
    the ``file`` provider), None for a pool tenant, whose files stay plain.

    Raises:
        KeyUnavailableError: as :func:`ml.core.tenant_parquet.writer_tenant_key`.
    """
    from ml.core.tenant_parquet import writer_tenant_key

    key = writer_tenant_key(settings, tenant_id)
    return None if key is None else sealing_key(key)


def sealing_key(tenant_key: str) -> bytes:
    """The sealing key derived from a tenant's key (64 hex characters): 32 bytes."""
    from ml.core.tenant_keys import derive

    return derive(tenant_key, _INFO)


def seal_bytes(data: bytes, key: bytes) -> bytes:
    """``data`` sealed with ``key`` (:func:`writer_key`)."""
    out = _Sink()
    with _primitive(key).new_encrypting_stream(out, MAGIC) as stream:
        stream.write(data)
    return MAGIC + out.getvalue()


def open_bytes(sealed: bytes, key: bytes) -> bytes:
    """The content of sealed bytes (:func:`seal_bytes`), with the sealing ``key``.

    Raises:
        ValueError: not sealed bytes. tink.TinkError: not this key, or cut short or changed.
    """
    if not sealed.startswith(MAGIC):
        raise ValueError("not sealed bytes")
    with _primitive(key).new_decrypting_stream(io.BytesIO(sealed[len(MAGIC) :]), MAGIC) as stream:
        return bytes(stream.read())


class _Changed(Exception):
    """Raised inside :func:`seal_file` to keep a file that changed while it was being sealed."""


def seal_file(path: Path, key: bytes, expected: os.stat_result | None = None) -> bool:
    """Seal one of a silo tenant's files in place with its ``key`` (:func:`writer_key`): atomically
    and durably, keeping its name and modification time. Returns False, the file left as it is,
    when it is sealed already or is not as ``expected`` (inode, size and time; by default as
    when the call began) just before the sealed copy replaces it."""
    if is_sealed(path):
        return False
    stat = expected or path.stat()
    try:
        with atomic.replacing(path, durable=True) as tmp:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                dst.write(MAGIC)
                with _primitive(key).new_encrypting_stream(_Unclosed(dst), MAGIC) as stream:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        stream.write(chunk)
            os.chmod(tmp, stat.st_mode & 0o777)
            os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            atomic.fsync_file(tmp)  # before the check: what remains is the rename
            now = path.stat()
            if (now.st_ino, now.st_size, now.st_mtime_ns) != (stat.st_ino, stat.st_size, stat.st_mtime_ns):
                raise _Changed
    except _Changed:
        return False
    return True


def open_plain(path: Path, dst: Path, settings: Settings, tenant_id: str) -> str:
    """Write a sealed file's content to ``dst`` (a private temporary folder's file); returns the
    content's SHA-256 (hex), the file's identity in ingestion manifests.

    Raises:
        TenantKeyError: no key for the tenant, or not the key the file was sealed with (or the
            file was cut short or changed); the message names the tenant, the file and what to do.
    """
    sha = hashlib.sha256()
    with open(dst, "wb") as out:
        for chunk in _plain_chunks(path, settings, tenant_id):
            sha.update(chunk)
            out.write(chunk)
    return sha.hexdigest()


def read_bytes(path: Path, settings: Settings, tenant_id: str, if_damaged: str = RESEND) -> bytes:
    """A file's content: its bytes, or a sealed file's content (errors as :func:`open_plain`;
    ``if_damaged``: what the message tells to do with a file that was cut short or changed, for a
    file the tenant did not send, e.g. the API's prediction log or a model's files)."""
    if not is_sealed(path):
        return path.read_bytes()
    return b"".join(_plain_chunks(path, settings, tenant_id, if_damaged))


def content_sha256(path: Path, settings: Settings, tenant_id: str) -> str:
    """SHA-256 (hex) of a landing file's content, sealed or not: sealing does not change it."""
    if not is_sealed(path):
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    sha = hashlib.sha256()
    for chunk in _plain_chunks(path, settings, tenant_id):
        sha.update(chunk)
    return sha.hexdigest()


def _plain_chunks(path: Path, settings: Settings, tenant_id: str, if_damaged: str = RESEND) -> Any:
    from tink import TinkError

    tenant_key = reader_tenant_key(settings, tenant_id, path)
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not a sealed file")
        try:
            with _primitive(sealing_key(tenant_key)).new_decrypting_stream(f, MAGIC) as stream:
                yield from iter(lambda: stream.read(_CHUNK), b"")
        except TinkError as exc:
            raise TenantKeyError(
                f"tenant {tenant_id}: {path} does not open with the key from TENANTFLOW_KEYS_PROVIDER (or was "
                f"cut short or changed since it was sealed); restore the key it was sealed with, or {if_damaged} "
                f"({exc})"
            ) from exc


class _Sink(io.BytesIO):
    """An in-memory destination that keeps its bytes when Tink's stream closes it."""

    def close(self) -> None:
        pass


class _Unclosed(io.RawIOBase):
    """A file object Tink's encrypting stream may close without closing the file underneath."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self.f.write(data)


@cache
def _primitive(key: bytes) -> Any:
    """Tink's ``StreamingAead`` for a 32-byte key (AES-256-GCM-HKDF, 1 MiB segments), the key
    imported as a one-key keyset (Tink generates keys itself; ours come from the tenant's key)."""
    import tink
    from tink import secret_key_access, streaming_aead
    from tink.proto import aes_gcm_hkdf_streaming_pb2 as pb
    from tink.proto import common_pb2, tink_pb2

    streaming_aead.register()
    params = pb.AesGcmHkdfStreamingParams(
        ciphertext_segment_size=_SEGMENT, derived_key_size=32, hkdf_hash_type=common_pb2.SHA256
    )
    material = pb.AesGcmHkdfStreamingKey(version=0, params=params, key_value=key).SerializeToString()
    data = tink_pb2.KeyData(
        type_url="type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey",
        value=material,
        key_material_type=tink_pb2.KeyData.SYMMETRIC,
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[tink_pb2.Keyset.Key(key_data=data, status=tink_pb2.ENABLED, key_id=1, output_prefix_type=tink_pb2.RAW)],
    )
    handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)
