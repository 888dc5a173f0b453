"""API keys: long-lived, scoped credentials for programs (``aipk_…``).

Not to be confused with the keys that sign our access JWTs (`identity.tokens`,
`SigningKeyring`).  `format`: what a key looks like (generate, checksum,
storage digest); `service`: create, verify, rotate with a grace period, claim,
revoke; `rotation`: the periodic task rotating keys that are due;
`endpoints`: ``/v1/api-keys``.
"""
