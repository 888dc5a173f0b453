"""The channels that carry committed job events between processes.

The bus (:mod:`aiprod.events.bus`) orders and fans events out; these modules
only move them, and each may lose messages without harm because the event
log is the source of truth:

* :mod:`.redis` — Redis pub/sub, when ``AIPROD_REDIS_URL`` is set: a
  publisher that never delays a job, and the bus's subscriber.
* :mod:`.postgres` — PostgreSQL ``NOTIFY`` inside the writing transaction
  (delivered only if it commits) and the bus's ``LISTEN`` connection, used
  while Redis is not configured or is down.
* :mod:`.poll` — reading the log itself: the reconcile loop that finds what
  no push channel brought; it is the only channel on SQLite.
"""
