"""HTTP entry point: app factory, error shape, middleware, health."""
