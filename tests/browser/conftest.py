"""Fixtures of the browser tests: the real service (the debug build) on a free port with a fresh
database, Redis, an SMTP sink and (when it answers) localstripe; Debian's Chromium driven by
Playwright for Python.

Tenants live at http://<slug>.localhost:<port> (BASE_DOMAIN=localhost; Chromium maps every
*.localhost name to 127.0.0.1 by --host-resolver-rules); the apex is http://localhost:<port>.

Every page a test opens is checked for console errors at the end of the test: a
Content-Security-Policy violation, a failed script or a JavaScript exception fails the test.
Screenshots go to $BROWSER_ARTIFACTS (default target/browser-artifacts/).
"""

import email
import email.policy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MC_BINARY", ROOT / "target/debug/montecarlo-platform"))
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "target/browser-artifacts"))
LOCALSTRIPE = os.environ.get("LOCALSTRIPE_URL", "http://127.0.0.1:8420/")
PASSWORD = "correct horse battery staple 42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=30):
    """One HTTP request; returns (status, headers, parsed JSON or text). Never raises on 4xx/5xx."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("content-type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, rh = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, rh = e.code, e.read(), e.headers
    text = raw.decode("utf-8", "replace")
    ctype = rh.get("content-type", "")
    parsed = json.loads(text) if "json" in ctype and text else text
    return status, rh, parsed


def localstripe_answers():
    try:
        req = urllib.request.Request(LOCALSTRIPE + "v1/customers?limit=1")
        req.add_header("Authorization", "Bearer sk_test_browser")
        urllib.request.urlopen(req, timeout=2).read()
        return True
    except Exception:
        return False


class MailSink:
    """The SMTP sink (tests/mail/sink.py) the service sends to; messages are files in `dir`."""

    def __init__(self, python, workdir):
        self.port = free_port()
        self.dir = workdir / "mail"
        self.proc = subprocess.Popen(
            [python, str(ROOT / "tests/mail/sink.py"), "--port", str(self.port), "--dir", str(self.dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"SMTP sink did not start: {line!r}"

    def messages(self):
        out = []
        for f in sorted(self.dir.glob("*.eml")):
            msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
            body = msg.get_body(preferencelist=("plain",))
            out.append(
                {"to": msg["To"], "subject": msg["Subject"], "body": body.get_content() if body else ""}
            )
        return out

    def wait_for(self, to, subject_contains, within=20.0):
        """The newest message to `to` whose subject contains `subject_contains`."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [
                m
                for m in self.messages()
                if to.lower() in (m["to"] or "").lower() and subject_contains.lower() in (m["subject"] or "").lower()
            ]
            if found:
                return found[-1]
            time.sleep(0.1)
        raise AssertionError(f"no mail to {to} about {subject_contains!r} within {within} s: {self.messages()}")

    @staticmethod
    def link(message, path):
        """The first link in the message whose path starts with `path` (e.g. /verify-email)."""
        m = re.search(r"https?://\S+?" + re.escape(path) + r"\S*", message["body"])
        assert m, f"no {path} link in {message['body']!r}"
        return m.group(0)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Service:
    """The service under test. `apex` is the apex URL; `url(slug)` a tenant's."""

    def __init__(self, workdir, python):
        self.port = free_port()
        self.db = f"browser_{int(time.time())}_{os.getpid()}"
        self.workdir = workdir
        self.sink = MailSink(python, workdir)
        self.admin_token = "browser-admin-token-" + uuid.uuid4().hex
        self.billing = localstripe_answers()
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.db}",
                "BIND_ADDRESS": f"127.0.0.1:{self.port}",
                "BASE_DOMAIN": "localhost",
                "PUBLIC_URL": f"http://{{tenant}}.localhost:{self.port}",
                "JWT_SECRET": "browser-tests-jwt-secret-" + uuid.uuid4().hex,
                "ADMIN_TOKEN": self.admin_token,
                "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
                "REDIS_KEY_PREFIX": f"browser:{self.db}:",
                "SMTP_URL": f"smtp://127.0.0.1:{self.sink.port}",
                "MAIL_POLL_MS": "100",
                "LOGIN_ATTEMPTS_PER_MINUTE": "1000",
                "RUST_LOG": os.environ.get("BROWSER_LOG", "warn"),
            }
        )
        if self.billing:
            self.env.update(
                {
                    "STRIPE_SECRET_KEY": "sk_test_browser",
                    "STRIPE_API_BASE": LOCALSTRIPE,
                    "STRIPE_WEBHOOK_SECRETS": "whsec_browser_tests",
                }
            )
        self.log = open(workdir / "service.log", "w")
        self.proc = subprocess.Popen([str(BIN)], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.apex = f"http://localhost:{self.port}"
        self.api = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited: {(workdir / 'service.log').read_text()[-4000:]}")
            try:
                if http("GET", self.api + "/health", timeout=2)[0] == 200:
                    break
            except Exception:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("service did not answer /health within 60 s")
        if self.billing:
            subprocess.run([str(BIN), "billing", "sync-catalog"], env=self.env, check=True, capture_output=True)

    def url(self, slug, path="/"):
        return f"http://{slug}.localhost:{self.port}{path}"

    def psql(self, sql):
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", self.db, "-Atqc", sql],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def signup(self, slug=None, email=None, password=PASSWORD, name="Ada Lovelace", organisation=None):
        """A tenant signed up through the JSON API; returns its slug, owner and first API key."""
        slug = slug or "t" + uuid.uuid4().hex[:10]
        email = email or f"owner@{slug}.example"
        status, _, body = http(
            "POST",
            self.api + "/api/v1/signup",
            {
                "organisation_name": organisation or f"{slug.capitalize()} Capital",
                "slug": slug,
                "full_name": name,
                "email": email,
                "password": password,
            },
        )
        assert status == 201, (status, body)
        return {
            "slug": slug,
            "email": email,
            "password": password,
            "api_key": body["api_keys"][0]["secret"],
            "signup": body,
        }

    def verify(self, tenant):
        """Verifies the owner's address through the link the service mailed."""
        msg = self.sink.wait_for(tenant["email"], "confirm")
        token = self.sink.link(msg, "/verify-email").split("token=", 1)[1]
        status, _, body = http(
            "POST", self.api + "/api/v1/auth/verify-email", {"token": token}, {"X-Tenant-ID": tenant["slug"]}
        )
        assert status in (200, 204), (status, body)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self.sink.stop()
        if os.environ.get("BROWSER_KEEP") != "1":
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
                 f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'],
                capture_output=True,
            )


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    assert BIN.exists(), f"{BIN} missing: run `cargo build` first"
    svc = Service(tmp_path_factory.mktemp("service"), sys.executable)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def browser():
    exe = shutil.which("chromium")
    assert exe, "Debian's chromium is not installed (bash scripts/browser-tools.sh)"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            args=["--no-sandbox", "--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1"],
        )
        yield b
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    ctx.console_errors = []

    def on_console(page, m):
        # A failed load is reported below with its address (a document answering 404 on
        # purpose is not an error of the page).
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            ctx.console_errors.append(f"{page.url}: {m.text}")

    def on_response(page, r):
        if r.status >= 400 and r.request.resource_type != "document":
            ctx.console_errors.append(f"{page.url}: {r.request.resource_type} {r.url} answered {r.status}")

    def watch(page):
        page.on("console", lambda m: on_console(page, m))
        page.on("pageerror", lambda e: ctx.console_errors.append(f"{page.url}: {e}"))
        page.on("response", lambda r: on_response(page, r))

    ctx.on("page", watch)
    yield ctx
    ctx.close()
    assert not ctx.console_errors, "console errors (CSP violation or script error):\n" + "\n".join(ctx.console_errors)


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def shot(request):
    """shot(page, name): a full-page screenshot into the artifacts directory; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def login(page, service, tenant, password=None):
    """Signs in through the tenant's login page; returns on the home page."""
    page.goto(service.url(tenant["slug"], "/login"))
    page.fill("input[name=email]", tenant["email"])
    page.fill("input[name=password]", password or tenant["password"])
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(service.url(tenant["slug"], "/"))


@pytest.fixture
def signed_in(service, page):
    """A new verified tenant and its owner signed in on `page`: returns the tenant."""
    tenant = service.signup()
    service.verify(tenant)
    login(page, service, tenant)
    return tenant
