"""Webhooks: signed, retried deliveries of job events to users' endpoints.

* :mod:`.endpoints` — the ``/v1/webhooks`` routes; :mod:`.schemas` their
  bodies; :mod:`.service` the rules behind them.
* :mod:`.delivery` — the outbox (a delivery row per matching endpoint, in
  the event's own transaction) and the dispatcher that sends and retries.
* :mod:`.signing` — Standard Webhooks signatures; :mod:`.secrets` — the
  signing secrets sealed at rest; :mod:`.ssrf` — which URLs an endpoint may
  point at, checked at registration and at every delivery.
"""
