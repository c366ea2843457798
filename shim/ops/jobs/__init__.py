"""Jobs and alerts (docs/jobs-and-alerts.md): commands run in the site's own environment
(run.py), [jobs.NAME] schedules (schedule.py) installed in the user's crontab (cron.py), their
run records (records.py), what `check` says about them (checks.py), and the owner's alert mail
(alert.py)."""
