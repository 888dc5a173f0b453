"""The production engine: a ProductionRequest in, a folder of finished artifacts out.

It knows nothing about HTTP, users or databases; the CLI and the job worker drive
it the same way through :func:`aiprod.production.pipeline.run_production`.
"""
