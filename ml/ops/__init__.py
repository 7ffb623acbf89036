"""Operations: the ``tenantflow`` CLI (``cli``), running Airflow locally (``airflow``,
``airflow_client``), the status contract (``status``) and the demo (``demo``)."""
