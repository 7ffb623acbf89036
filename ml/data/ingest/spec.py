"""A tenant's source spec: how its exports map onto the landing contract, as data (never code).

A spec is a YAML/JSON mapping stored with the tenant (``tenantflow tenants source TENANT --file
spec.yaml``); a tenant without one reads the landing contract as is (:data:`DEFAULT`). Example
(a shop's order lines; ``docs`` in the README has the whole Online Retail spec)::

    format: csv                      # optional: csv | jsonl | json | parquet (default: the file name)
    encoding: cp1252                 # optional (default: UTF-8, else cp1252 for delimited text)
    delimiter: ";"                   # optional (default: sniffed from the header)
    header: [InvoiceNo, StockCode, Quantity, InvoiceDate, UnitPrice, CustomerID]
                                     # optional: a delimited export without a header line, its columns
                                     # in order (its first line is then a record, line 1)
    columns:                         # landing column: a source column | {const: v} | {expr: SQL} | {hash: [cols]}
      event_id: {hash: [InvoiceNo, StockCode, Quantity, InvoiceDate, CustomerID]}
      user_id: CustomerID
      item_id: StockCode
      event_type: {expr: "case when starts_with(InvoiceNo, 'C') then 'cancel' else 'buy' end"}
      event_at: InvoiceDate
      quantity: Quantity
      price: UnitPrice
    timestamp: {format: "%m/%d/%Y %H:%M", timezone: Europe/London}   # iso | epoch_s | epoch_ms | strptime
    event_types: {buy: purchase, cancel: return}   # source value -> landing event type
    numeric_ids: [user_id]           # "17850.0" is "17850"
    rows:                            # optional row rules
      missing_user: quarantine       # quarantine (default: reason null_user_id) | drop (counted, not kept)
      other_tenant: quarantine       # quarantine (default: tenant_mismatch) | skip: a shared export holding
                                     # several tenants' rows, each tenant importing its own
      max_null_user_share: 0.5       # a day with more user events without a user fails whole (default 0.5)

Source column names match ignoring case and surrounding spaces. A landing column the spec leaves
out is read from the file's column of its name when there is one (else it is missing; a left-out
``tenant_id`` is the tenant whose landing folder holds the file). ``expr`` is one DuckDB scalar expression over the
file's columns, limited to :data:`EXPRESSION_FUNCTIONS` (no table functions, no subqueries: a spec
can never read a file or a table). ``hash`` derives a deterministic event id (SHA-256 of the named
columns' text), so a re-sent file lands nothing twice. The ``rows`` rules decide what happens
to a row without a user (``drop`` counts it under ``dropped`` in the day's manifest instead of
quarantining it) and to a row whose ``tenant_id`` names another tenant (``skip`` leaves it to that
tenant: counted as ``other_tenant_rows``, outside this tenant's ``rows_in``; a line of such a
shared export that names no tenant, or cannot be parsed, is nobody's known row: every tenant
reading the file counts it as ``unattributed_lines`` and names its line numbers in the problems,
never copying its text into its own stores).

Raises :class:`SpecError` (naming the field) for anything else.

A landed file is read again with the spec that read it first (its manifest names it, :func:`landed_under`): a new spec
reads the files that arrive after it (``ingest --current-spec``: the days asked for), a webhook or contract file the
contract (:func:`ml.data.ingest.readers.read_landed`). The day's row rules (``rows``) are the current spec's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from ml.core.contract import EVENT_TYPES, LANDING_COLUMNS, REQUIRED_COLUMNS, WEBHOOK_FILE
from ml.core.errors import TenantError
from ml.core.settings import Settings
from ml.core.tenants import Tenant, TenantStore

log = logging.getLogger(__name__)

# Functions (and operators) an ``expr`` may call: text, numbers, dates, conditionals.
_TEXT = "starts_with ends_with prefix suffix contains concat concat_ws lower upper trim ltrim rtrim replace"
_MORE_TEXT = "substr substring left right length strlen lpad rpad split_part md5 sha256"
_PATTERNS = "regexp_replace regexp_extract regexp_matches"
_VALUES = "nullif coalesce ifnull abs round floor ceil greatest least"
_TIMES = "strptime try_strptime strftime make_timestamp epoch_ms to_timestamp"
_OPERATORS = "+ - * / // % || = <> != < > <= >="
EXPRESSION_FUNCTIONS = frozenset(" ".join([_TEXT, _MORE_TEXT, _PATTERNS, _VALUES, _TIMES, _OPERATORS]).split())
_EXPRESSION_NODES = frozenset(
    {"CONSTANT", "COLUMN_REF", "CASE", "FUNCTION", "COMPARISON", "CONJUNCTION", "OPERATOR", "CAST"}
)


class SpecError(TenantError):
    """A source spec that cannot be used: names the field and what to write instead."""


class Const(BaseModel):
    model_config = ConfigDict(extra="forbid")
    const: str


class Expr(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expr: str

    @field_validator("expr")
    @classmethod
    def _safe(cls, v: str) -> str:
        check_expression(v)
        return v


class Hash(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hash: list[str] = Field(min_length=1)


def _source_kind(value: object) -> str | None:
    """Which kind of source a ``columns`` entry is, so an error names that kind's problem."""
    if isinstance(value, str):
        return "column"
    if isinstance(value, BaseModel):
        return type(value).__name__.lower()
    if isinstance(value, dict):
        return next((k for k in ("const", "expr", "hash") if k in value), None)
    return None


Source = Annotated[
    Annotated[str, Tag("column")]
    | Annotated[Const, Tag("const")]
    | Annotated[Expr, Tag("expr")]
    | Annotated[Hash, Tag("hash")],
    Discriminator(
        _source_kind,
        custom_error_type="source",
        custom_error_message="expected a source column name, {const: value}, {expr: SQL} or {hash: [columns]}",
    ),
]


class Rows(BaseModel):
    """Row rules: ``missing_user`` (``quarantine`` | ``drop``), ``other_tenant`` (``quarantine`` |
    ``skip``), ``max_null_user_share`` (0..1: above it a landing day is quarantined whole)."""

    model_config = ConfigDict(extra="forbid")
    missing_user: Literal["quarantine", "drop"] = "quarantine"
    other_tenant: Literal["quarantine", "skip"] = "quarantine"
    # a day whose user events lack a user more often than this is a broken export: quarantined whole
    # (batch_failed). A shop with guest checkouts raises it (1.0: never).
    max_null_user_share: float = Field(0.5, ge=0, le=1)


class Timestamp(BaseModel):
    """``format``: ``iso`` (ISO 8601), ``epoch_s``, ``epoch_ms``, or a ``strptime`` pattern;
    ``timezone``: the zone of times written without an offset (an IANA name)."""

    model_config = ConfigDict(extra="forbid")
    format: str = "iso"
    timezone: str = "UTC"

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v in ("iso", "epoch_s", "epoch_ms"):
            return v
        if "%" not in v:
            raise ValueError(
                f"expected iso, epoch_s, epoch_ms or a strptime pattern such as '%d/%m/%Y %H:%M', got {v!r}"
            )
        with duckdb.connect() as con:
            try:
                con.execute("select try_strptime('', ?)", [v])
            except duckdb.Error as exc:
                raise ValueError(f"not a strptime pattern DuckDB reads: {str(exc).splitlines()[0]}") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        with duckdb.connect() as con:
            known = con.execute("select count(*) from pg_timezone_names() where name = ?", [v]).fetchone()
        if not known or not known[0]:
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as UTC or Europe/London")
        return v


def _contract_columns() -> dict[str, Source]:
    """The landing contract itself: each required landing column from the column of its name
    (the optional ones are read by name when a file has them)."""
    return {c: c for c in REQUIRED_COLUMNS}


class SourceSpec(BaseModel):
    """How one tenant's files map onto the landing contract (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["csv", "jsonl", "json", "parquet"] | None = None
    encoding: str | None = None
    delimiter: str | None = None
    header: list[str] | None = None
    columns: dict[str, Source] = Field(default_factory=lambda: _contract_columns())
    timestamp: Timestamp = Field(default_factory=Timestamp)
    event_types: dict[str, str] = Field(default_factory=dict)
    numeric_ids: list[str] = Field(default_factory=list)
    rows: Rows = Field(default_factory=Rows)

    @field_validator("columns")
    @classmethod
    def _landing_columns(cls, v: dict[str, Source]) -> dict[str, Source]:
        unknown = sorted(set(v) - set(LANDING_COLUMNS))
        if unknown:
            raise ValueError(f"not landing columns: {unknown}; the landing columns are {list(LANDING_COLUMNS)}")
        return v

    @field_validator("event_types")
    @classmethod
    def _landing_types(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted({t for t in v.values() if t not in EVENT_TYPES})
        if unknown:
            raise ValueError(f"not landing event types: {unknown}; the event types are {list(EVENT_TYPES)}")
        return v

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v in '"\r\n'):
            raise ValueError(f"a delimiter is one character other than a quote or a line break, got {v!r}")
        return v

    @field_validator("header")
    @classmethod
    def _column_names(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        names = [str(n).strip() for n in v]
        if not names or not all(names):
            raise ValueError("header names every column of the file in order, none blank (e.g. [user_id, item_id])")
        twice = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1})
        if twice:
            raise ValueError(f"header names {twice} twice (column names are matched ignoring case)")
        return names

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str | None) -> str | None:
        import codecs

        if v is not None:
            try:
                text = codecs.lookup(v)._is_text_encoding
            except LookupError:
                text = False
            if not text:
                raise ValueError(f"unknown text encoding {v!r} (e.g. utf-8, cp1252, latin-1, utf-16)")
        return v

    @model_validator(mode="after")
    def _ids_are_mapped(self) -> SourceSpec:
        if self.header is not None and self.format not in (None, "csv"):
            raise ValueError(f"header is for delimited text (format csv), not {self.format}")
        for c in self.numeric_ids:
            if c not in LANDING_COLUMNS:
                raise ValueError(f"numeric_ids: {c!r} is not a landing column")
        return self

    def source(self, landing_column: str) -> Source | None:
        """Where a landing column comes from (None: the file does not send it)."""
        return self.columns.get(landing_column)


DEFAULT = SourceSpec()


def parse_spec(data: object, where: str) -> SourceSpec:
    """A spec from a parsed YAML/JSON mapping; :class:`SpecError` naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a source spec is a mapping, got {type(data).__name__}.")
    try:
        return SourceSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        field = ".".join(p for i, p in enumerate(loc) if i == 0 or p != loc[i - 1])  # not "expr.expr"
        message = first["msg"].removeprefix("Value error, ")
        raise SpecError(f"{where}: source spec field {field!r}: {message}.") from None


def source_spec(settings: Settings, tenant: Tenant) -> SourceSpec:
    """The tenant's stored spec, or :data:`DEFAULT`; :class:`SpecError` if the stored one no longer parses."""
    stored = TenantStore(settings).source_spec(tenant.tenant_id)
    return DEFAULT if stored is None else parse_spec(stored, f"tenant {tenant.tenant_id}")


def spec_id(spec: SourceSpec) -> str | None:
    """A spec's content id, the first 16 hex digits of the SHA-256 of its JSON (its fields set, keys sorted); None
    for the landing contract (:data:`DEFAULT`)."""
    if spec == DEFAULT:
        return None
    text = json.dumps(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_for(name: str, sha256: str, current: SourceSpec, landed: dict[tuple[str, str], SourceSpec]) -> SourceSpec:
    """The spec a landing file is read with: the landing contract for a webhook file (the platform writes it), the
    spec it was read with before (``landed``: :func:`landed_under`), else ``current``."""
    if WEBHOOK_FILE.fullmatch(name):
        return DEFAULT
    return landed.get((name, sha256), current)


def remember_spec(settings: Settings, tenant: Tenant, spec: SourceSpec) -> None:
    """Keep the spec a run reads the tenant's files with (:meth:`ml.core.tenants.TenantStore.remember_source_spec`),
    so that a later run can read them with it again; nothing for the landing contract."""
    if (sid := spec_id(spec)) is not None:
        TenantStore(settings).remember_source_spec(
            tenant.tenant_id, sid, spec.model_dump(mode="json", exclude_defaults=True)
        )


def landed_under(
    settings: Settings, tenant: Tenant, current: SourceSpec, previous: dict[str, Any] | None
) -> dict[tuple[str, str], SourceSpec]:
    """(file name, SHA-256) -> the spec a day's files were read with at its last ingestion (``previous``, its
    manifest), where that is not ``current``: each is read with it again. A file whose entry names no spec (landed
    before specs were recorded, or no spec fitted it) is read with ``current`` (or as the landing contract where
    only that fits it: :func:`ml.data.ingest.readers.read_landed`); one whose spec is no longer kept too, with a
    warning."""
    store, current_id = TenantStore(settings), spec_id(current)
    kept: dict[str | None, SourceSpec | None] = {None: DEFAULT}  # spec id -> the spec (None: no longer kept)
    out: dict[tuple[str, str], SourceSpec] = {}
    for f in (previous or {}).get("files", []):
        if "spec" not in f or f["spec"] == current_id or not f.get("sha256"):
            continue
        if f["spec"] not in kept:  # (read once per spec, not per file)
            stored = store.source_spec_version(tenant.tenant_id, f["spec"])
            kept[f["spec"]] = None if stored is None else parse_spec(stored, f"tenant {tenant.tenant_id}")
        if (spec := kept[f["spec"]]) is None:
            log.warning("tenant %s: %s was read with spec %s, no longer kept: read with the current one",
                        tenant.tenant_id, f["name"], f["spec"])  # fmt: skip
            continue
        out[(f["name"], f["sha256"])] = spec
    return out


def load_spec_file(path: Path) -> SourceSpec:
    """A spec from a YAML or JSON file; :class:`SpecError` naming the file and the field."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read a source spec: {exc}") from None
    return parse_spec(data, str(path))


def check_expression(sql: str) -> None:
    """Accept one scalar DuckDB expression that calls only :data:`EXPRESSION_FUNCTIONS`.

    Parsed by DuckDB itself (``json_serialize_sql``), so what is checked is what would run.

    Raises:
        ValueError: not one expression, or it uses a subquery, a table or a function not allowed.
    """
    if sql.rstrip().endswith(";"):  # a statement's end, which the reader's SQL around it cannot take
        raise ValueError(f"expected one expression, without a ';', got {sql!r}")
    with duckdb.connect() as con:
        (serialized,) = con.execute("select json_serialize_sql(?)", [f"select {sql}"]).fetchone() or ("{}",)
    tree = json.loads(serialized)
    if tree.get("error"):
        raise ValueError(f"not a SQL expression: {tree.get('error_message')}")
    statements = tree["statements"]
    node = statements[0]["node"] if len(statements) == 1 else {}
    clauses = ("where_clause", "group_expressions", "group_sets", "having", "qualify", "sample", "modifiers")
    if (
        node.get("type") != "SELECT_NODE"
        or len(node.get("select_list", [])) != 1
        or node.get("from_table", {}).get("type") != "EMPTY"
        or any(node.get(c) for c in clauses)
        or node["select_list"][0].get("alias")
    ):
        raise ValueError(f"expected one expression (no alias, no clause), got {sql!r}")
    _walk(node["select_list"][0], sql)


def _walk(node: Any, sql: str) -> None:
    if isinstance(node, list):
        for n in node:
            _walk(n, sql)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class")
    if cls is not None and cls not in _EXPRESSION_NODES:
        raise ValueError(f"{sql!r}: {cls.lower()} is not allowed in a source spec expression")
    if cls == "FUNCTION" and node.get("function_name", "").lower() not in EXPRESSION_FUNCTIONS:
        raise ValueError(
            f"{sql!r}: function {node.get('function_name')!r} is not allowed; allowed: "
            + ", ".join(sorted(f for f in EXPRESSION_FUNCTIONS if f.isidentifier()))
        )
    for key, value in node.items():
        if key != "value":  # a constant's value is data, not a node
            _walk(value, sql)
