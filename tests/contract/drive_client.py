#!/usr/bin/env python3
"""Generate a Python client from the committed spec with openapi-python-client and drive the
README walkthrough with it, as a new user would:

    signup -> login -> me (token) -> me (key) -> create key -> GBM simulation
    -> bootstrap simulation on the bundled history -> ... -> background job (Prefer:
    respond-async, poll to succeeded) -> get -> list with the cursor -> usage

Usage (the service must be running; tests/contract/run.sh starts one):

    .tools/venv/bin/python tests/contract/drive_client.py --base-url http://127.0.0.1:8080

Fails when the generator prints ANY warning, when an operation the walkthrough needs was not
generated, when a response does not parse into its declared model (e.g. a `null` where the
spec says non-nullable: the generated `from_dict` raises), or on an unexpected status.

The generated client needs Python >= 3.11 (it uses enum.StrEnum) and httpx + attrs +
python-dateutil, which openapi-python-client itself depends on (so the tool venv has them).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "mc_client"
# No ruff post-hooks: the tool would otherwise warn "ruff is not in PATH" outside the venv,
# and formatting the throw-away client is pointless.
OPC_CONFIG = textwrap.dedent(
    f"""\
    project_name_override: mc-client
    package_name_override: {PACKAGE}
    post_hooks: []
    """
)
WARNING_MARKERS = ("Warning", "WARNING", "Unable to", "will not be generated", "will be omitted")


def find_opc() -> str:
    venv = Path(os.environ.get("CONTRACT_VENV", HERE.parent.parent / ".tools" / "venv"))
    for cand in (venv / "bin" / "openapi-python-client", shutil.which("openapi-python-client")):
        if cand and Path(cand).exists():
            return str(cand)
    raise SystemExit("openapi-python-client not found: run scripts/contract-tools.sh")


def generate_client(spec: Path, workdir: Path) -> None:
    """Generate `mc_client` into workdir; raise on any generator warning."""
    cfg = workdir / "opc-config.yml"
    cfg.write_text(OPC_CONFIG)
    out = workdir / PACKAGE
    proc = subprocess.run(
        [find_opc(), "generate", "--path", str(spec), "--config", str(cfg),
         "--output-path", str(out), "--meta", "none"],
        capture_output=True, text=True,
    )
    log = proc.stdout + proc.stderr
    warnings = [l for l in log.splitlines() if any(m in l for m in WARNING_MARKERS)]
    if proc.returncode != 0 or warnings:
        raise AssertionError(
            f"openapi-python-client rc={proc.returncode}, {len(warnings)} warning line(s):\n{log}"
        )
    sys.path.insert(0, str(workdir))


class Walkthrough:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.passed: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def step(self, name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failing step
            self.failed.append((name, f"{type(e).__name__}: {e}"))
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            return False
        self.passed.append(name)
        print(f"ok   {name}")
        return True

    def run(self) -> int:
        # Imports happen here, after generation. Module paths follow the spec's tags and
        # operationIds: tag "Simulations" + operationId "createSimulation" ->
        # mc_client.api.simulations.create_simulation.
        m = importlib.import_module(f"{PACKAGE}.models")
        from mc_client import AuthenticatedClient, Client  # type: ignore[import-not-found]
        from mc_client.api.accounts import login, me, signup  # type: ignore[import-not-found]
        from mc_client.api.keys import create_key  # type: ignore[import-not-found]
        from mc_client.api.simulations import (  # type: ignore[import-not-found]
            create_simulation, get_simulation, list_simulations)
        from mc_client.api.usage import usage  # type: ignore[import-not-found]
        from mc_client.api.jobs import get_job  # type: ignore[import-not-found]
        from mc_client.types import UNSET  # type: ignore[import-not-found]

        slug = f"drive-{random.randrange(10**6):06d}"
        email = f"ada+{slug}@acme.example"
        password = "correct horse battery staple"
        anon = Client(base_url=self.base_url, raise_on_unexpected_status=True)
        st: dict = {}

        def expect(resp, status, model):
            assert resp.status_code == status, f"HTTP {int(resp.status_code)}: {resp.content[:300]!r}"
            assert isinstance(resp.parsed, model), f"parsed {type(resp.parsed).__name__}, want {model.__name__}"
            return resp.parsed

        def polite(call):
            """Calls again after `Retry-After` on a 429, as a consumer of a rate-limited API does
            (the trial tier allows bursts of 5 at 2 a second)."""
            for _ in range(5):
                resp = call()
                if resp.status_code != 429:
                    return resp
                time.sleep(float(resp.headers.get("retry-after", "1")))
            return resp

        def do_signup():
            body = m.SignupRequest(organisation_name="Acme Capital", slug=slug,
                                   full_name="Ada Lovelace", email=email, password=password)
            r = expect(signup.sync_detailed(client=anon, body=body), 201, m.SignupResponse)
            assert r.tenant.slug == slug
            st["key"] = r.api_keys[0].secret
            # API-key client: the ApiKey scheme is a header, no prefix
            st["key_client"] = AuthenticatedClient(
                base_url=self.base_url, token=st["key"], prefix="", auth_header_name="X-API-Key",
                raise_on_unexpected_status=True)

        def do_login():
            body = m.LoginRequest(email=email, password=password)
            # the tenant is named per call: X-Tenant-ID is a declared header parameter
            r = expect(login.sync_detailed(client=anon, body=body, x_tenant_id=slug), 200, m.TokenResponse)
            st["user_client"] = AuthenticatedClient(
                base_url=self.base_url, token=r.access_token, raise_on_unexpected_status=True)

        def do_me_token():
            r = expect(me.sync_detailed(client=st["user_client"], x_tenant_id=slug), 200, m.MeResponse)
            assert r.user is not UNSET and r.user.email == email, r.user
            assert r.api_key_id is UNSET

        def do_me_key():
            r = expect(me.sync_detailed(client=st["key_client"]), 200, m.MeResponse)
            assert r.user is UNSET, "an API key caller has no user: the field must be omitted"
            assert isinstance(r.api_key_id, str)

        def do_create_key():
            r = expect(create_key.sync_detailed(client=st["user_client"], x_tenant_id=slug,
                                                body=m.CreateKeyRequest(name="drive")), 201, m.NewApiKey)
            st["key2_client"] = AuthenticatedClient(
                base_url=self.base_url, token=r.secret, prefix="", auth_header_name="X-API-Key",
                raise_on_unexpected_status=True)

        def do_gbm():
            body = m.SimulationRequest(
                assets=[m.AssetInput(name="Equities", weight=0.6, drift=0.07, volatility=0.16),
                        m.AssetInput(name="Bonds", weight=0.4, drift=0.03, volatility=0.06)],
                correlation=[[1.0, 0.2], [0.2, 1.0]],
                initial_value=100_000.0, horizon_years=10, paths=1000,
                rebalancing=m.RebalancingInput.ANNUALLY,
                cash_flow=m.CashFlowInput(amount=500.0, frequency=m.CashFlowFrequencyInput.EVERY_STEP,
                                          annual_growth=0.02),
            )
            resp = create_simulation.sync_detailed(client=st["key_client"], body=body, x_tenant_id=slug,
                                                   idempotency_key=f"drive-{slug}-gbm")
            v = expect(resp, 201, m.SimulationView)
            # the echo shows the defaults that were applied
            assert v.request.steps_per_year == 12 and isinstance(v.request.seed, int)
            assert v.request.model.type_ == m.ModelKind.GBM, v.request.model
            assert v.request.correlation == [[1.0, 0.2], [0.2, 1.0]]
            assert v.result.terminal.percentiles.p50 > 0
            headers = {k.lower() for k in resp.headers}
            missing = {"ratelimit-policy", "ratelimit", "x-ratelimit-remaining"} - headers
            assert not missing, f"rate-limit headers missing: {missing}"
            st["sim_ids"] = [v.id]

        def do_bootstrap():
            body = m.SimulationRequest(
                assets=[m.AssetInput(name="US stocks", weight=0.6), m.AssetInput(name="US bonds", weight=0.4)],
                initial_value=100_000.0, horizon_years=30, steps_per_year=12, paths=1000,
                model=m.BootstrapHistoryModel(type_=m.BootstrapTag.BOOTSTRAP,
                                              history=m.HistorySource.SHILLER_US_MONTHLY, block_length=12),
                rebalancing=m.RebalancingInput.ANNUALLY,
            )
            v = expect(create_simulation.sync_detailed(client=st["key2_client"], body=body),
                       201, m.SimulationView)
            assert v.request.model.type_ == m.ModelKind.BOOTSTRAP, v.request.model
            assert v.request.model.block_length == 12
            # the identity correlation that was applied is echoed
            assert v.request.correlation == [[1.0, 0.0], [0.0, 1.0]], v.request.correlation
            st["sim_ids"].append(v.id)

        def do_retirement():
            # Unions by `type` in the request (withdrawal, inflation, sampling) and in the echo.
            body = m.SimulationRequest(
                assets=[m.AssetInput(name="Stocks", weight=0.6, drift=0.07, volatility=0.16, expense_ratio=0.0005),
                        m.AssetInput(name="Bonds", weight=0.4, drift=0.03, volatility=0.06)],
                initial_value=1_000_000.0, horizon_years=30, steps_per_year=1, paths=1024, seed=65,
                rebalancing=m.RebalancingInput.ANNUALLY,
                withdrawal=m.GuardrailsWithdrawal(type_=m.GuardrailsTag.GUARDRAILS, initial_rate=0.05),
                inflation=m.ConstantInflation(type_=m.ConstantTag.CONSTANT, rate=0.025),
                sampling=m.RqmcSampling(type_=m.RqmcTag.RQMC, scramblings=8),
                withdrawal_rates=m.WithdrawalRatesInput(success_probability=0.9),
            )
            v = expect(create_simulation.sync_detailed(client=st["key_client"], body=body), 201, m.SimulationView)
            w = v.request.withdrawal
            assert isinstance(w, m.GuardrailsParameters) and w.no_cut_final_years == 15, w
            assert isinstance(v.request.sampling, m.RqmcParameters) and v.request.sampling.scramblings == 8
            r = v.result
            assert r.interval_method.type_ == m.IntervalMethodKind.REPLICATES and r.interval_method.replicates == 8
            iv = r.risk.success_rate_interval
            assert iv.lower <= r.risk.success_rate <= iv.upper, (iv, r.risk.success_rate)
            assert len(r.withdrawals.yearly) == 30 and len(r.withdrawals.yearly_real) == 30
            assert 0.0 < r.withdrawal_rates.safe.rate < 0.2, r.withdrawal_rates.safe
            assert r.real.terminal.percentiles.p50 < r.terminal.percentiles.p50

        def do_cohorts():
            body = m.SimulationRequest(
                assets=[m.AssetInput(name="S&P", weight=0.5), m.AssetInput(name="Treasuries", weight=0.5)],
                initial_value=1_000_000.0, horizon_years=30,
                model=m.CohortsHistoryModel(type_=m.HistoricalCohortsTag.HISTORICAL_COHORTS,
                                            history=m.HistorySource.SHILLER_US_MONTHLY, start_stride=12),
                rebalancing=m.RebalancingInput.ANNUALLY,
                withdrawal=m.ConstantAmountWithdrawal(type_=m.ConstantAmountTag.CONSTANT_AMOUNT, initial_rate=0.04),
                inflation=m.HistoricalInflation(type_=m.HistoricalTag.HISTORICAL),
            )
            v = expect(create_simulation.sync_detailed(client=st["key_client"], body=body), 201, m.SimulationView)
            assert v.request.model.type_ == m.ModelKind.HISTORICAL_COHORTS, v.request.model
            c = v.result.cohorts
            assert len(c.cohorts) == 123 and c.cohorts[0].start_month == "1871-01", c.cohorts[0]
            assert c.cohorts[c.worst_cohort].survived is False

        def do_precision():
            body = m.SimulationRequest(
                assets=[m.AssetInput(weight=1.0, drift=0.06, volatility=0.15)],
                initial_value=100_000.0, horizon_years=10, paths=1000,
                precision=m.PrecisionInput(goals=[m.PrecisionGoal(quantity=m.PrecisionQuantity.TERMINAL_P50,
                                                                  half_width=0.02)]),
            )
            v = expect(create_simulation.sync_detailed(client=st["key_client"], body=body), 201, m.SimulationView)
            p = v.result.precision
            assert p.stop_reason == m.StopReason.TARGET_MET and p.goals[0].met, p
            assert v.result.paths > 1000

        def do_job():
            # Prefer: respond-async -> 202 with the job and Location; poll it to succeeded; its
            # simulation has the bits of the synchronous run with the same seed.
            body = m.SimulationRequest(
                assets=[m.AssetInput(name="Equities", weight=1.0, drift=0.07, volatility=0.16)],
                initial_value=100_000.0, horizon_years=5, paths=2000, seed=99,
            )
            resp = polite(lambda: create_simulation.sync_detailed(client=st["key_client"], body=body,
                                                                  prefer="respond-async"))
            job = expect(resp, 202, m.Job)
            headers = {k.lower(): v for k, v in resp.headers.items()}
            assert headers["location"] == f"/api/v1/jobs/{job.id}", headers
            assert headers["preference-applied"] == "respond-async", headers
            deadline = time.monotonic() + 60
            while True:
                job = expect(polite(lambda: get_job.sync_detailed(job.id, client=st["key_client"])), 200, m.Job)
                if job.status in (m.JobStatusView.SUCCEEDED, m.JobStatusView.FAILED, m.JobStatusView.CANCELLED):
                    break
                assert time.monotonic() < deadline, f"job still {job.status}"
                time.sleep(0.5)
            assert job.status == m.JobStatusView.SUCCEEDED, job
            assert job.progress == 1.0 and job.problem is UNSET, job
            stored_resp = polite(lambda: get_simulation.sync_detailed(job.simulation_id, client=st["key_client"]))
            stored = expect(stored_resp, 200, m.SimulationView)
            sync_resp = polite(lambda: create_simulation.sync_detailed(client=st["key_client"], body=body))
            sync = expect(sync_resp, 201, m.SimulationView)
            # Same bits: the wire JSON of the two results is identical.
            a, b = json.loads(stored_resp.content)["result"], json.loads(sync_resp.content)["result"]
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            assert not diff, f"results differ in {diff}"
            st["sim_ids"] += [stored.id, sync.id]

        def do_get():
            sim_id = st["sim_ids"][0]
            v = expect(get_simulation.sync_detailed(sim_id, client=st["user_client"], x_tenant_id=slug),
                       200, m.SimulationView)
            assert v.id == sim_id

        def do_list():
            seen, cursor, pages = [], UNSET, 0
            while True:
                page = expect(polite(lambda: list_simulations.sync_detailed(
                    client=st["key_client"], limit=1, cursor=cursor)), 200, m.SimulationPage)
                seen += [s.id for s in page.items]
                pages += 1
                if page.next_cursor is UNSET:  # the last page omits it (never null)
                    break
                cursor = page.next_cursor
                assert pages < 50, "cursor does not terminate"
            assert set(st["sim_ids"]) <= set(seen), (st["sim_ids"], seen)
            assert pages >= 2, "limit=1 with two simulations must page"

        def do_usage():
            r = expect(polite(lambda: usage.sync_detailed(client=st["key_client"], days=7)), 200, m.UsageReport)
            assert r.period.used >= 5, r.period.used

        steps = [("signup", do_signup), ("login (X-Tenant-ID)", do_login), ("me with token", do_me_token),
                 ("me with key", do_me_key), ("create key", do_create_key), ("GBM simulation", do_gbm),
                 ("bootstrap simulation (shiller_us_monthly)", do_bootstrap),
                 ("retirement plan (guardrails, inflation, RQMC, withdrawal rates)", do_retirement),
                 ("historical cohorts (Bengen)", do_cohorts), ("precision target", do_precision),
                 ("background job (Prefer: respond-async, poll to succeeded)", do_job),
                 ("get simulation", do_get),
                 ("list simulations with the cursor", do_list), ("usage", do_usage)]
        for i, (name, fn) in enumerate(steps):
            if not self.step(name, fn):
                for later, _ in steps[i + 1:]:
                    self.failed.append((later, "not run: an earlier step failed"))
                break
        print(f"walkthrough: {len(self.passed)} passed, {len(self.failed)} failed")
        return 0 if not self.failed else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("MC_BASE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--spec", default=os.environ.get("MC_SPEC", str(HERE.parent.parent / "openapi" / "openapi.json")))
    ap.add_argument("--keep", help="generate into this directory and keep it")
    args = ap.parse_args(argv)
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mc-client-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if (workdir / PACKAGE).exists():
            shutil.rmtree(workdir / PACKAGE)
        generate_client(Path(args.spec), workdir)
        print(f"generated {workdir / PACKAGE} with no warnings")
        return Walkthrough(args.base_url).run()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
