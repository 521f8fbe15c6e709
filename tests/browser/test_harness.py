"""The harness itself: the service, the SMTP sink and Chromium work together."""

from conftest import http


def test_the_service_mail_and_browser_work_together(service, page, shot):
    tenant = service.signup()
    service.verify(tenant)
    status, _, me = http(
        "GET", service.api + "/api/v1/auth/me", headers={"X-API-Key": tenant["api_key"]}
    )
    assert status == 200, me
    page.goto(service.api + "/docs")
    page.wait_for_selector(".swagger-ui .info")
    assert "Monte Carlo" in page.title() or "Monte Carlo" in page.content()
    shot(page, "docs")
