"""Schemathesis hooks: per-operation authentication, chosen by the operation's own `security`.

Loaded with SCHEMATHESIS_HOOKS=hooks (this directory on PYTHONPATH). Environment:
  MC_BASE_URL       the service, e.g. http://127.0.0.1:8080
  MC_TENANT         tenant slug (X-Tenant-ID)
  MC_API_KEY        an API key of that tenant                   -> operations allowing ApiKey
  MC_EMAIL/MC_PASSWORD  its owner, for a bearer token (re-login every 10 min; tokens live 15)
                                                                -> operations allowing only BearerJwt
  MC_ADMIN_TOKEN    the platform admin token                    -> operations with AdminToken
Operations without `security` (signup, login, health) get no credentials.
"""
import os

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


@schemathesis.auth(refresh_interval=None).apply_to(lambda ctx: "AdminToken" in _schemes(ctx))
class AdminTokenAuth:
    def get(self, case, ctx):
        return os.environ["MC_ADMIN_TOKEN"]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
