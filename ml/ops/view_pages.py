"""The Tenants view's pages (:mod:`ml.ops.tenant_view`): their style sheet and Jinja templates, autoescaped.

Each page is rendered from the status contract's rows and the view's helpers (links, formatting:
:func:`ml.ops.tenant_view._helpers`); nothing here reads a store.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import Template

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35em .5em;
text-align:left;vertical-align:top}th{background:#f4f4f4}.bad{color:#b00020}.ok{color:#137333}
.small{font-size:12px;color:#555}code{font-size:12px}
"""

INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>Tenantflow tenants</title>
<style>{{ style }}</style></head><body>
<h1>Tenants</h1>
<p class="small">Read from the stores at {{ now }} (the status contract, <a href="status.json">as JSON</a>).
GX <a href="{{ data_docs }}">Data Docs</a>.</p>
<table><tr><th>tenant</th><th>region</th><th>tier</th><th>health</th><th>lake</th><th>features checked</th>
<th>quarantined</th><th>models</th><th>drift</th></tr>
{% for r in rows %}
<tr id="tenant-{{ r.tenant_id }}" data-tenant-id="{{ r.tenant_id }}">
<td><a href="tenants/{{ r.tenant_id }}">{{ r.tenant_id }}</a></td><td>{{ r.region }}</td>
<td>{{ r.isolation }}{% if r.share_data %}, shares{% endif %}</td>
<td>{% if r.healthy %}<span class="ok">healthy</span>{% else %}<span class="bad">unhealthy</span>
<ul class="small">{% for p in r.health_problems %}<li>{{ p }}</li>{% endfor %}</ul>{% endif %}</td>
<td>{{ "{:,}".format(r.lake_rows) }} rows, {{ r.lake_days }} days{% if r.lake_last_day %}<br>
<span class="small">last day {{ r.lake_last_day }}, changed {{ r.lake_changed_at }}</span>{% endif %}</td>
<td>{{ r.features_checked_at or "never" }}</td>
<td>{% for reason, n in r.quarantined.items() %}{{ reason }}: {{ n }}<br>{% else %}none{% endfor %}</td>
<td>{% for kind, m in r.models.items() %}<div data-kind="{{ kind }}">{{ model_line(kind, m) }}</div>{% endfor %}</td>
<td>{{ drift_line(r.drift) }}{% for p in drift_reports(r.drift) %}<br>{{ report_anchor(p, p | basename) }}
{% else %}{% if r.drift.report_path and not r.drift.drifted %}<br>{{ report_anchor(r.drift.report_path, "report") }}
{% endif %}{% endfor %}
</td></tr>
{% endfor %}</table></body></html>"""

DETAIL = """<!doctype html><html><head><meta charset="utf-8"><title>{{ r.tenant_id }} · Tenantflow</title>
<style>{{ style }}</style></head><body>
<p><a href="../">all tenants</a></p>
<h1>{{ r.display_name or r.tenant_id }} <span class="small">({{ r.tenant_id }}, {{ r.region }}, {{ r.isolation }})</span></h1>
<h2>Health</h2>
{% if r.healthy %}<p class="ok">healthy</p>{% else %}
<ul class="bad">{% for p in r.health_problems %}<li>{{ p }}</li>{% endfor %}</ul>{% endif %}
<p>Features checked {{ r.features_checked_at or "never" }}: {{ r.feature_rows if r.feature_rows is not none else "-" }} users
in the warehouse{% if not r.healthy and r.features_checked_at %} (held back: not published){% endif %}.
<a href="{{ r.tenant_id }}/checks">Latest Great Expectations results</a> (this page needs nothing from the
internet) · <a href="{{ data_docs }}">GX Data Docs</a></p>
<p id="published">{% if r.published and r.published.error %}Its published features pointer cannot be read:
{{ r.published.error }}.{% elif r.published %}The API serves features snapshot {{ r.published.snapshot_id }} (cutoff
{{ r.published.serving_cutoff }}, published {{ r.published.published_at }}){% if not r.healthy %}, until a build
passes its checks{% endif %}.{% else %}No features published yet: the API has none for this
tenant.{% endif %}</p>
<h2>Data</h2>
<table><tr><th>events in</th><th>in the lake</th><th>duplicates dropped</th><th>quarantined</th><th>lake</th></tr>
<tr><td>{{ "{:,}".format(r.events_in) }}</td><td>{{ "{:,}".format(r.lake_rows) }}</td><td>{{ r.duplicates_dropped }}</td>
<td>{% for reason, n in r.quarantined.items() %}{{ reason }}: {{ n }}<br>{% else %}none{% endfor %}</td>
<td>{{ r.lake_days }} days, last {{ r.lake_last_day or "-" }}, changed {{ r.lake_changed_at or "-" }}</td></tr></table>
{% if r.ingest_warnings %}<ul class="small">{% for w in r.ingest_warnings %}<li>{{ w }}</li>{% endfor %}</ul>{% endif %}
<h2>Models</h2>
<table><tr><th>kind</th><th>champion</th><th>challenger</th><th>holdout</th><th>MLflow</th></tr>
{% for kind, m in r.models.items() %}<tr data-kind="{{ kind }}"><td>{{ kind }}</td><td>{{ model_line(kind, m) }}</td>
<td>{% if m.challenger_version %}v{{ m.challenger_version }}: {{ m.challenger_reason or "" }}{% else %}-{% endif %}</td>
<td>{{ metrics_line(kind, m) }}</td>
<td><a href="{{ mlflow_model(kind) }}">model</a> · <a href="{{ mlflow_runs(kind) }}">runs</a></td></tr>{% endfor %}
</table>
<h2>Drift</h2><p>{{ drift_line(r.drift) }}{% if r.drift.report_path %}:
{{ report_anchor(r.drift.report_path, "latest Evidently report") }}{% endif %}</p>
<table><tr><th>check</th><th>model kind</th><th>metric</th><th>value</th><th>threshold</th><th>drifted</th>
<th>status</th><th>detail</th><th>reports</th></tr>
{% for c in r.drift.checks %}<tr><td>{{ c.check }}</td><td>{{ c.kind }}</td><td>{{ c.metric }}</td>
<td>{{ figure(c.metric, c.value) if c.value is not none else "-" }}</td>
<td>{{ figure(c.metric, c.threshold) if c.threshold is not none else "-" }}</td>
<td>{{ "yes" if c.drifted else "no" }}</td><td>{{ c.status }}</td><td class="small">{{ c.detail or "" }}</td>
<td class="small">{% for p in c.reports %}{{ report_anchor(p, p | basename) }} {% endfor %}</td></tr>
{% endfor %}</table>
</body></html>"""


CHECKS = """<!doctype html><html><head><meta charset="utf-8"><title>{{ tenant_id }} checks · Tenantflow</title>
<style>{{ style }}</style></head><body>
<p><a href="../{{ tenant_id }}">{{ tenant_id }}</a> · <a href="../../">all tenants</a></p>
<h1>Great Expectations results of {{ tenant_id }}</h1>
<div id="health">{% if health is none %}<p>Features not checked yet.</p>{% elif health.healthy %}<p class="ok">Features
healthy at {{ health.checked_at }}: dbt's tests and these checks passed.</p>{% else %}<p class="bad">Features held back
at {{ health.checked_at }} (the API serves the last good snapshot): dbt's models and tests, then these checks. Where dbt
skipped a model, the checks below read the table of an earlier build.</p><ul class="bad">{% for p in health.health_problems
%}<li>{{ p }}</li>{% endfor %}</ul>{% endif %}</div>
{% for v in results %}
<h2 data-suite="{{ v.area }}/{{ v.suite }}">{{ v.area }} / {{ v.suite }}:
<span class="{{ 'ok' if v.success else 'bad' }}">{{ "passed" if v.success else "failed" }}</span></h2>
<p class="small">batch {{ v.batch }}: {{ v.statistics.successful_expectations }} of
{{ v.statistics.evaluated_expectations }} expectations met</p>
<table><tr><th>expectation</th><th>column</th><th>severity</th><th>result</th><th>observed</th></tr>
{% for e in v.expectations %}<tr><td>{{ e.type }}</td><td>{{ e.column or "" }}</td><td>{{ e.severity or "" }}</td>
<td class="{{ 'ok' if e.success else 'bad' }}">{{ "met" if e.success else "not met" }}</td>
<td class="small">{{ e.observed if e.observed is not none else "" }}</td></tr>{% endfor %}</table>
{% else %}<p>No validation results kept yet: the ingest and features DAGs write them.</p>{% endfor %}
</body></html>"""


@cache
def template(source: str) -> Template:
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["basename"] = lambda path: Path(path).name  # a report's file name: recommender.items.html
    return env.from_string(source)
