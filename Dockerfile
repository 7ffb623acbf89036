# One image for every Tenantflow process (Airflow components, MLflow server, workers, the API).
FROM python:3.11-slim
# LightGBM's OpenMP runtime; bash for the compose commands
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 bash \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tenantflow
RUN pip install --no-cache-dir uv==0.13.9
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip install --system --no-cache -r requirements.lock
# GX Data Docs' scripts and styles, pinned by npm's lock, where Settings.data_docs_assets looks (as `make venv`)
COPY ml/data/data_docs_assets/package.json ml/data/data_docs_assets/package-lock.json /usr/local/share/tenantflow/data-docs-assets/
RUN cd /usr/local/share/tenantflow/data-docs-assets && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
    && npm cache clean --force
COPY . .
RUN uv pip install --system --no-cache --no-deps -e . \
    && useradd --uid 50000 --create-home --shell /bin/bash tenantflow \
    && mkdir -p /var/tenantflow /var/tenantflow-keys \
    && chown tenantflow /var/tenantflow /var/tenantflow-keys && chmod 0700 /var/tenantflow /var/tenantflow-keys
ENV TENANTFLOW_HOME=/var/tenantflow PYTHONPATH=/opt/tenantflow
# never root: the state volume is created owned by this user (the folder above)
USER 50000
# what every process writes to the state volume is its owner's only (files 0600, folders 0700)
ENTRYPOINT ["/bin/sh", "-c", "umask 077 && exec \"$@\"", "--"]
