"""`IdentityService`: the identity domain's parts, built once per app and
sharing one database, one audit log and one throttle.

The rules live in the parts; this module only wires them together and checks
the configuration on the way (a weak or world-readable signing key, or an
external issuer claiming to be us, refuses to start):

- `users` (`UserService`): accounts, roles, the first admin, external accounts;
- `sessions` (`SessionService`): log in, refresh, log out, revoke, change password;
- `api_keys` (`ApiKeyService`): create, verify, rotate, claim, revoke;
- `authenticate` (`Authenticator`): a bearer credential → its principal;
- `audit`, `throttle`, `oidc`, `signing_keys`: what the parts share.

The app keeps one in ``app.state.identity``; routes reach it through the
`deps.Identity` dependency and call the part concerned
(``identity.sessions.login``).  The few operations other packages, the CLI and
the tests use are also offered here under the names they have always had
(``identity.create_user`` is ``identity.users.create_user``).
"""

from __future__ import annotations

from aiprod.db.engine import Database
from aiprod.identity import tokens
from aiprod.identity.api_keys.service import ApiKeyService
from aiprod.identity.audit import AuditLog
from aiprod.identity.authentication import Authenticator
from aiprod.identity.browser import CsrfTokens
from aiprod.identity.oidc import OIDCVerifier
from aiprod.identity.oidc_signin import OIDCSignIn
from aiprod.identity.sessions import SessionService
from aiprod.identity.throttle import Throttle
from aiprod.identity.users import UserService
from aiprod.settings import Settings


class IdentityService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        # The keys that sign our access JWTs (refuses weak ones) -- not API keys.
        self.signing_keys = tokens.SigningKeyring.from_settings(settings)
        for issuer in settings.oidc_issuers:
            if issuer.issuer == settings.jwt_issuer:
                raise tokens.InsecureConfiguration(
                    f"external issuer {issuer.issuer!r} is this server's own JWT issuer"
                )
            secret = issuer.client_secret_file
            if secret is not None and not (secret.is_file() and secret.read_text().strip()):
                raise tokens.InsecureConfiguration(
                    f"the client secret file of {issuer.issuer!r} is missing or empty"
                )
        self.audit = AuditLog(db)
        self.throttle = Throttle(db, settings)
        api_key_secret = settings.api_key_secret or tokens.secret_from_file(
            settings.data_dir / "api-key.secret"
        )
        self.api_keys = ApiKeyService(db, settings, self.audit, api_key_secret)
        self.oidc = OIDCVerifier(list(settings.oidc_issuers))
        self.oidc_signin = OIDCSignIn(list(settings.oidc_issuers), self.oidc, self.signing_keys)
        self.csrf = CsrfTokens(self.signing_keys, settings.csrf_token_minutes * 60)
        self.sessions = SessionService(db, settings, self.signing_keys, self.audit, self.throttle)
        self.users = UserService(db, self.audit, self.sessions)
        self.authenticator = Authenticator(
            db, settings, self.signing_keys, self.api_keys, self.oidc, self.users
        )

        # What callers outside the domain use, under the names they always had.
        self.authenticate = self.authenticator.authenticate
        self.create_user = self.users.create_user
        self.ensure_admin = self.users.ensure_admin
        self.get_user = self.users.get_user
