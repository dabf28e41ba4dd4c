"""Alerts: rules over the reporting views and the run ledger, turned into messages sent once.

model     rules, channels, facts, findings and notices as typed values
rules     pure: a tenant's facts -> findings
state     pure: findings against the stored open alerts -> what to open, remind, resolve
render    pure: a notice -> Teams card, Slack message, webhook document, email
deliver   aiohttp and aiosmtplib, with timeouts and tenacity retries
engine    one evaluation: read, evaluate, store, deliver, record (SQL in fetcher.store.alerts)
after_run the evaluation after a run or backfill (imports engine only when there are rules to evaluate)
"""
