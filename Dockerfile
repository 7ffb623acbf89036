# One image for every Tenantflow process (Airflow components, MLflow UI, workers).
FROM python:3.11-slim
WORKDIR /opt/tenantflow
RUN pip install --no-cache-dir uv==0.13.9
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip install --system --no-cache -r requirements.lock
COPY . .
RUN uv pip install --system --no-cache --no-deps -e .
ENV TENANTFLOW_HOME=/var/tenantflow PYTHONPATH=/opt/tenantflow
