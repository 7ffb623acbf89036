"""``tenantflow tenants keys``: a tenant's API keys for the serving API (created, listed, revoked; only hashes kept)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ml.core.settings import get_settings

keys_app = typer.Typer(help="API keys of a tenant for the serving API.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    tenant_id: str, label: Annotated[str, typer.Option(help="What the key is for, e.g. 'web backend'")] = ""
) -> None:
    """Print a new key once (only its hash is stored)."""
    from ml.serving import keys

    settings = get_settings()
    record, plain = keys.create_key(tenant_id, label, settings)
    print(f"API key {record.key_id} for tenant {record.tenant_id} (shown once; only its hash is stored):")
    print(plain)
    wait = settings.serve.watch_seconds
    typer.echo(f"A running API accepts it within {wait:g} s (it re-reads keys that often).", err=True)


@keys_app.command("revoke")
def keys_revoke(tenant_id: str, key_id: str) -> None:
    """End a key."""
    from ml.serving import keys

    record = keys.revoke_key(tenant_id, key_id, get_settings())
    print(
        f"revoked key {record.key_id} of tenant {record.tenant_id} at {record.revoked_at}; a running API "
        "refuses it within a second"
    )


@keys_app.command("list")
def keys_list(tenant_id: Annotated[str | None, typer.Argument()] = None) -> None:
    """Key ids, labels, created and revoked times (never the keys)."""
    from ml.serving import keys

    print(json.dumps([k.public() for k in keys.list_keys(tenant_id, get_settings())], indent=1))
