"""Operating the platform: Prometheus metrics (:mod:`.metrics`, the scrape-time
figures of :mod:`.snapshot`, the protected ``/metrics`` of :mod:`.endpoints`)
and structured logs (:mod:`.logs`)."""
