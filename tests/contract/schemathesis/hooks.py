"""Schemathesis hooks: per-operation authentication, chosen by the operation's own `security`.

Loaded with SCHEMATHESIS_HOOKS=hooks (this directory on PYTHONPATH). Environment:
  MC_BASE_URL       the service, e.g. http://127.0.0.1:8080
  MC_TENANT         tenant slug (X-Tenant-ID)
  MC_API_KEY        an API key of that tenant                   -> operations allowing ApiKey
  MC_EMAIL/MC_PASSWORD  its owner, for a bearer token (re-login every 10 min; tokens live 15)
                                                                -> operations allowing only BearerJwt
  MC_ADMIN_TOKEN    the bootstrap secret (ADMIN_TOKEN)          -> operations with AdminBootstrapToken
  MC_ADMIN_EMAIL/MC_ADMIN_PASSWORD/MC_ADMIN_TOTP_SECRET  the run's platform admin (bootstrapped
                    by run.sh): signs in with a TOTP code       -> operations with AdminJwt
Operations without `security` (signup, login, health) get no credentials.
"""
import base64
import hashlib
import hmac
import os
import struct
import time

import requests
import schemathesis


def _schemes(ctx) -> set[str]:
    raw = ctx.operation.definition.raw
    return {name for req in raw.get("security", []) for name in req}


@schemathesis.auth(refresh_interval=None).apply_to(lambda ctx: "ApiKey" in _schemes(ctx))
class ApiKeyAuth:
    def get(self, case, ctx):
        return os.environ["MC_API_KEY"]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "X-API-Key": data}


@schemathesis.auth(refresh_interval=600, retry_on=[401]).apply_to(
    lambda ctx: _schemes(ctx) == {"BearerJwt"}
)
class UserTokenAuth:
    def get(self, case, ctx):
        resp = requests.post(
            f"{os.environ['MC_BASE_URL'].rstrip('/')}/api/v1/auth/login",
            json={"email": os.environ["MC_EMAIL"], "password": os.environ["MC_PASSWORD"]},
            headers={"X-Tenant-ID": os.environ["MC_TENANT"]},
            timeout=30,
        )
        resp.raise_for_status()
        return resp.json()["access_token"]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.auth(refresh_interval=None).apply_to(
    lambda ctx: "AdminBootstrapToken" in _schemes(ctx)
)
class AdminBootstrapAuth:
    def get(self, case, ctx):
        return os.environ["MC_ADMIN_TOKEN"]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def totp_code(secret_b32: str, at: float) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s), as authenticator apps compute it."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


_tokens: dict = {}


def _admin_token(email: str, secret: str) -> str:
    """Signs an admin in once and reuses the token for 10 minutes (it lives 15): a TOTP code is
    accepted once per admin, and Schemathesis asks for credentials per phase and operation, so
    signing in each time would wait for fresh 30 s steps inside data generation."""
    now = time.time()
    cached = _tokens.get(email)
    if cached and now - cached[1] < 600:
        return cached[0]
    resp = requests.post(
        f"{os.environ['MC_BASE_URL'].rstrip('/')}/api/v1/admin/auth/login",
        json={
            "email": email,
            "password": os.environ["MC_ADMIN_PASSWORD"],
            "totp_code": totp_code(secret, now),
        },
        timeout=30,
    )
    resp.raise_for_status()
    _tokens[email] = (resp.json()["access_token"], now)
    return _tokens[email][0]


def _is_logout(ctx) -> bool:
    return ctx.operation.definition.raw.get("operationId") == "adminLogout"


@schemathesis.auth(refresh_interval=None).apply_to(
    lambda ctx: "AdminJwt" in _schemes(ctx) and not _is_logout(ctx)
)
class AdminJwtAuth:
    """The run's admin (bootstrapped by run.sh) for every admin operation but logout."""

    def get(self, case, ctx):
        return _admin_token(os.environ["MC_ADMIN_EMAIL"], os.environ["MC_ADMIN_TOTP_SECRET"])

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.auth(refresh_interval=None).apply_to(_is_logout)
class AdminLogoutAuth:
    """adminLogout ends a second admin's session (made with the CLI by run.sh), so the fuzzer
    never signs the main admin out; once ended, further logouts answer 401 (documented)."""

    def get(self, case, ctx):
        return _admin_token(os.environ["MC_ADMIN2_EMAIL"], os.environ["MC_ADMIN2_TOTP_SECRET"])

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
