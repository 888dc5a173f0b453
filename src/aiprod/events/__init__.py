"""Live progress: the event wire format, cross-process fan-out, WebSocket/SSE
streams and signed webhooks."""
