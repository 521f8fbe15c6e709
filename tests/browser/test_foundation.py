"""The dashboard's frame in a real browser: landing, sign-in (a wrong password is named next to
the field), home, sign-out."""

from playwright.sync_api import expect

from conftest import login


def test_sign_in_home_and_sign_out(service, page, shot):
    page.goto(service.apex + "/")
    expect(page.locator("h1").first).to_be_visible()
    shot(page, "landing")

    tenant = service.signup()
    service.verify(tenant)
    page.goto(service.url(tenant["slug"], "/login"))
    page.fill("input[name=email]", tenant["email"])
    page.fill("input[name=password]", "not the password at all")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("#password-error, #form-error").first).to_be_visible()
    shot(page, "login-error")

    login(page, service, tenant)
    body = page.locator("main").inner_text()
    assert tenant["slug"].capitalize() in body or tenant["slug"] in body
    assert page.locator("progress.usage-bar").count() == 1
    shot(page, "home")

    page.click("form[action='/logout'] button[type=submit]")
    page.goto(service.url(tenant["slug"], "/"))
    page.wait_for_url(service.url(tenant["slug"], "/login"))
