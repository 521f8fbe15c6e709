"""The operations pages in a real browser: home (verification banner), usage (chart drawn from a
key's calls, table fallback), team (invite by mail, accept, role change, deactivate), billing
(tiers; upgrade → a Checkout URL through localstripe behind a small Checkout stub) and audit.
Page weights (cold, bytes transferred incl. static files) are printed with -s."""

import http.server as httpserver
import json
import threading
import urllib.error
import urllib.request

import pytest

import conftest
from conftest import Service, http, login


def weight(page, url):
    """Loads `url` cold in `page`'s fresh context and returns the KB transferred."""
    sizes = []

    def on_finished(req):
        try:
            sizes.append(req.sizes()["responseBodySize"] + req.sizes()["responseHeadersSize"])
        except Exception:
            pass

    page.on("requestfinished", on_finished)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.remove_listener("requestfinished", on_finished)
    return sum(sizes) / 1024.0


def canvas_ink(page, selector):
    """How many pixels of the canvas under `selector` are drawn (alpha > 0)."""
    return page.evaluate(
        """(sel) => {
            const c = document.querySelector(sel + ' canvas');
            if (!c) return 0;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n;
        }""",
        selector,
    )


def test_home_shows_the_verification_banner_until_verified(service, page, shot):
    tenant = service.signup()
    login(page, service, tenant)
    banner = page.locator("#verify-banner")
    assert banner.is_visible()
    assert tenant["email"] in banner.inner_text()
    # The signup message was just sent: the service's 429 comes back as a message.
    banner.get_by_role("button", name="Resend the link").click()
    page.wait_for_url(service.url(tenant["slug"], "/"))
    assert "less than a minute ago" in page.locator(".banner-warning").first.inner_text()
    shot(page, "ops-home")
    print(f"\nhome cold weight: {weight(page.context.browser.new_page(), service.url(tenant['slug'], '/login')):.1f} KB (login)")
    service.verify(tenant)
    page.reload()
    assert page.locator("#verify-banner").count() == 0


def test_usage_draws_the_calls_of_the_api_key(service, signed_in, page, shot):
    key = signed_in["api_key"]
    for _ in range(4):
        status, _, _ = http("GET", service.api + "/api/v1/auth/me", headers={"X-API-Key": key})
        assert status == 200
    page.goto(service.url(signed_in["slug"], "/usage"))
    page.wait_for_selector("#usage-chart canvas")
    page.wait_for_function("document.querySelector('#usage-chart .u-legend') !== null")
    assert canvas_ink(page, "#usage-chart") > 500, "the chart is drawn"
    rows = page.locator("#usage-table tbody tr")
    assert rows.count() >= 1
    first = rows.first.inner_text()
    assert key[:12] in first or "…" in first, first
    assert "4" in first.split()
    shot(page, "ops-usage")


def test_team_invite_accept_role_change_and_deactivate(service, signed_in, page, shot):
    slug = signed_in["slug"]
    page.goto(service.url(slug, "/team"))
    invitee = f"grace@{slug}.example"
    page.fill("#invite-email", invitee)
    page.select_option("#invite-role", "member")
    page.get_by_role("button", name="Send invitation").click()
    page.wait_for_url(service.url(slug, "/team"))
    assert invitee in page.locator("#invitations").inner_text()
    message = service.sink.wait_for(invitee, "invited you")
    token = service.sink.link(message, "/accept-invitation").split("token=", 1)[1]
    status, _, body = http(
        "POST",
        service.api + "/api/v1/invitations/accept",
        {"token": token, "full_name": "Grace Hopper", "password": "grace hopper password 1906"},
        {"X-Tenant-ID": slug},
    )
    assert status in (200, 201), body
    page.reload()
    row = page.locator(f"#members tr[data-email='{invitee}']")
    assert row.locator(".member-role").inner_text() == "member"
    assert page.locator("#invitations").count() == 0
    # Role change.
    row.locator("select[name=role]").select_option("admin")
    row.get_by_role("button", name="Change role").click()
    page.wait_for_url(service.url(slug, "/team"))
    assert "is now admin" in page.locator(".banner-success").inner_text()
    row = page.locator(f"#members tr[data-email='{invitee}']")
    assert row.locator(".member-role").inner_text() == "admin"
    # Deactivate (confirmed).
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Deactivate").click()
    page.wait_for_url(service.url(slug, "/team"))
    row = page.locator(f"#members tr[data-email='{invitee}']")
    assert row.locator(".member-status").inner_text() == "deactivated"
    # The service's rule about the last owner, shown as a message.
    shot(page, "ops-team")
    status, _, _ = http(
        "POST",
        service.api + "/api/v1/auth/login",
        {"email": invitee, "password": "grace hopper password 1906"},
        {"X-Tenant-ID": slug},
    )
    assert status in (401, 403)


class StripeStub(httpserver.BaseHTTPRequestHandler):
    """Answers Checkout and Portal sessions (localstripe has neither) and forwards the rest to
    localstripe, like the capture server of tests/api/billing.rs."""

    upstream = conftest.LOCALSTRIPE
    sessions = 0

    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        path = self.path.split("?")[0]
        if self.command == "POST" and path == "/v1/checkout/sessions":
            StripeStub.sessions += 1
            n = StripeStub.sessions
            return self._answer(200, {"id": f"cs_test_{n}", "object": "checkout.session",
                                      "url": f"https://checkout.stripe.com/c/pay/cs_test_{n}"})
        if self.command == "POST" and path == "/v1/billing_portal/sessions":
            StripeStub.sessions += 1
            return self._answer(200, {"id": "bps_1", "object": "billing_portal.session",
                                      "url": "https://billing.stripe.com/p/session/bps_1"})
        req = urllib.request.Request(self.upstream.rstrip("/") + self.path, data=body, method=self.command)
        for h in ("authorization", "content-type", "idempotency-key", "stripe-version"):
            if self.headers.get(h):
                req.add_header(h, self.headers.get(h))
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                self._answer(r.status, r.read())
        except urllib.error.HTTPError as e:
            self._answer(e.code, e.read())

    do_GET = do_POST = do_DELETE = _forward


@pytest.fixture(scope="module")
def stripe_service(tmp_path_factory):
    if not conftest.localstripe_answers():
        pytest.skip("localstripe is not running (bash scripts/localstripe.sh)")
    server = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), StripeStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    saved = conftest.LOCALSTRIPE
    conftest.LOCALSTRIPE = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        svc = Service(tmp_path_factory.mktemp("stripe-service"), __import__("sys").executable)
    finally:
        conftest.LOCALSTRIPE = saved
    yield svc
    svc.stop()
    server.shutdown()


def test_billing_shows_the_tiers_and_upgrade_leads_to_checkout(stripe_service, page, shot):
    service = stripe_service
    tenant = service.signup()
    service.verify(tenant)
    login(page, service, tenant)
    page.goto(service.url(tenant["slug"], "/billing"))
    text = page.locator("main").inner_text()
    for price in ("$99.00", "$499.00", "$2,999.00", "$0.05 per simulation"):
        assert price in text, price
    assert page.locator("#billing-status").inner_text() == "trial"
    shot(page, "ops-billing")
    # Stripe itself is not loaded: the browser's request to it is answered here.
    page.route("https://checkout.stripe.com/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>Checkout stub</title>"))
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/billing")) as info:
        page.get_by_role("button", name="Upgrade to Starter").click()
    resp = info.value
    assert resp.status == 303
    assert resp.headers["location"].startswith("https://checkout.stripe.com/c/pay/cs_test_"), resp.headers
    page.wait_for_url("https://checkout.stripe.com/**")


def test_audit_shows_sign_in_and_key_events(service, signed_in, page, shot):
    slug = signed_in["slug"]
    # A key event: one created through the API with the owner's token.
    status, _, body = http(
        "POST", service.api + "/api/v1/auth/login",
        {"email": signed_in["email"], "password": signed_in["password"]}, {"X-Tenant-ID": slug},
    )
    assert status == 200, body
    status, _, body = http(
        "POST", service.api + "/api/v1/keys", {"name": "audit probe"},
        {"Authorization": "Bearer " + body["access_token"]},
    )
    assert status == 201, body
    page.goto(service.url(slug, "/audit"))
    table = page.locator("#audit-table").inner_text()
    assert "auth.login_succeeded" in table
    assert "api_key.created" in table
    assert "HeadlessChrome" in table or "Chrome" in table, "user agent column"
    page.fill("#action", "api_key.created")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/audit?action=api_key.created**")
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() >= 1
    assert all("api_key.created" in rows.nth(i).inner_text() for i in range(rows.count()))
    page.goto(service.url(slug, "/audit"))
    shot(page, "ops-audit")
