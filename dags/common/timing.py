"""Scheduling constants shared by the DAG files."""

from datetime import timedelta

# ``CronTriggerTimetable(run_immediately=...)`` for DAGs without a start_date: should unpausing
# run the cron slot that just passed? ``False`` does not mean "never" in Airflow 3.1: it still
# runs a slot that passed within 10% of the interval (16.8 h for a weekly cron). A zero window
# never does, so unpausing `train`, `score` or `monitor` waits for the next slot (their assets
# start them anyway) instead of training or scoring at once on whatever the last slot left.
NEVER_AT_ONCE = timedelta(0)
