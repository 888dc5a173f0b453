"""Jobs: durable productions with leases, checkpoints, retries and events."""
