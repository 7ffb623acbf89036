"""Ingestion: landing drops → validated, deduplicated, Hive-partitioned Parquet in the lake.

One lake partition ``lake/region=R/tenant=T/date=D/`` belongs to exactly one landing date: it
is rebuilt whole from that date's complete landing files every time the date is ingested, and
replaced atomically (``os.replace`` of one Parquet file). That makes every run idempotent:
re-running an interval, a backfill, or an Airflow retry after a SIGKILL gives the same bytes,
never duplicates. Beside the data, ``_manifest.json`` records which files (by content hash)
made the partition and how the rows reconcile::

    rows_in = landed + sum(quarantined.values()) + duplicates_dropped

Rows that break the landing contract (:mod:`ml.data.landing_checks`) go to
``quarantine/region=R/tenant=T/date=D/part-0.parquet`` with a reason per row; nothing is
dropped silently. One tenant's bad batch never touches another tenant's files.

A silo tenant's lake and quarantine files are Parquet encrypted with its key
(:mod:`ml.core.tenant_parquet`): a rerun, backfill or retry that gives the same rows leaves the
file as it was (its bytes would change with every encryption), so they keep the same bytes too; a
rebuild from nothing (the lake deleted) gives the same rows under new nonces.

Modules: ``landing`` (which files are complete, which days to ingest), ``files`` (a file's
format, compression, encoding and delimiter), ``readers`` (landing files into text rows),
``validation`` (the GX checks of a batch), ``partitions`` (deduplication and the atomic lake and
quarantine writes), ``run`` (tenants and days), ``plan`` (the DAG's chunks).
"""
