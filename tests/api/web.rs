//! The web dashboard's foundation over HTTP: static files, page headers, sign-in and out with
//! the session cookie, CSRF, and tenant isolation of the cookie.

use crate::helpers::{Options, TestApp, bearer, spawn_app, spawn_with};
use reqwest::Method;
use reqwest::header::HeaderMap;

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub(crate) fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The `Set-Cookie` of `name`, if any.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value of the first hidden `csrf` field.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("csrf field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

pub(crate) fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    pub(crate) fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) async fn page(
    app: &TestApp,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Page {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .header("host", host)
        .header("accept", "text/html");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b);
    }
    let resp = req.send().await.expect("request sent");
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

pub(crate) async fn get(app: &TestApp, host: &str, path: &str, cookie: &str) -> Page {
    let headers: &[(&str, &str)] = if cookie.is_empty() {
        &[]
    } else {
        &[("cookie", cookie)]
    };
    page(app, Method::GET, host, path, headers, None).await
}

pub(crate) async fn post(
    app: &TestApp,
    host: &str,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> Page {
    page(
        app,
        Method::POST,
        host,
        path,
        &[("cookie", cookie), ("sec-fetch-site", "same-origin")],
        Some(form(fields)),
    )
    .await
}

/// How many live sessions the API lists for the bearer of `token`.
async fn live_sessions(app: &TestApp, token: &str) -> usize {
    let resp = app
        .get(
            "/api/v1/auth/sessions",
            &[("authorization", &bearer(token))],
        )
        .await;
    let body = resp.ok(200);
    body.as_array()
        .or_else(|| body["sessions"].as_array())
        .map_or(0, Vec::len)
}

/// Signs in through the form; returns the `mc_session` cookie value.
async fn sign_in(app: &TestApp, host: &str, email: &str, password: &str) -> String {
    let login = get(app, host, "/login", "").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let visitor = cookie_value(&login.set_cookie("mc_csrf").expect("mc_csrf cookie"));
    let done = post(
        app,
        host,
        "/login",
        &format!("mc_csrf={visitor}"),
        &[
            ("email", email),
            ("password", password),
            ("csrf", &login.csrf()),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    cookie_value(&done.set_cookie("mc_session").expect("session cookie"))
}

#[tokio::test]
async fn static_files_are_versioned_immutable_and_typed() {
    let app = spawn_app().await;
    let landing = get(&app, "mc.test", "/", "").await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    assert!(landing.body.contains("/signup") && landing.body.contains("/pricing"));
    let at = landing.body.find("/static/").expect("a static URL");
    let css_url = landing.body[at..].split('"').next().unwrap().to_string();
    assert!(css_url.ends_with("/app.css"), "{css_url}");
    let css = get(&app, "mc.test", &css_url, "").await;
    assert_eq!(css.status, 200);
    assert_eq!(
        css.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(css.header("content-type").starts_with("text/css"));
    assert!(css.body.contains(".usage-bar"));
    let at = landing
        .body
        .find("htmx-2.0.11.min.js")
        .expect("htmx script");
    let start = landing.body[..at].rfind('"').unwrap() + 1;
    let js_url = &landing.body[start..at + "htmx-2.0.11.min.js".len()];
    let js = get(&app, "mc.test", js_url, "").await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").starts_with("text/javascript"));
    // An old hash still gets the file, but not cached for ever.
    let stale = get(&app, "mc.test", "/static/000000000000/app.css", "").await;
    assert_eq!(
        (stale.status, stale.header("cache-control").as_str()),
        (200, "no-cache")
    );
    assert_eq!(
        get(&app, "mc.test", "/static/x/nope.css", "").await.status,
        404
    );
}

#[tokio::test]
async fn pages_carry_the_csp_and_unknown_subdomains_answer_a_404_page() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let login = get(&app, "acme.mc.test", "/login", "").await;
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(login.header("cache-control"), "no-store");
    assert!(login.body.contains("acme Org") && login.body.contains("name=\"password\""));
    assert!(
        !login.body.contains("name=\"otp\""),
        "no code field before it is asked for"
    );
    let missing = get(&app, "nobody.mc.test", "/login", "").await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("content-type").starts_with("text/html"));
    assert!(missing.body.contains("Request id"));
    assert!(!missing.header("content-security-policy").is_empty());
}

#[tokio::test]
async fn sign_in_sets_the_session_cookie_and_home_shows_the_tenant() {
    // An https PUBLIC_URL (production's): the cookie is Secure.
    let app = spawn_with(Options {
        env: vec![("PUBLIC_URL", "https://{tenant}.mc.test".to_string())],
        ..Default::default()
    })
    .await;
    app.signup("acme").await;
    let login = get(&app, "acme.mc.test", "/login", "").await;
    let visitor = cookie_value(&login.set_cookie("mc_csrf").unwrap());
    let wrong = post(
        &app,
        "acme.mc.test",
        "/login",
        &format!("mc_csrf={visitor}"),
        &[
            ("email", "owner@acme.example"),
            ("password", "not the password"),
            ("csrf", &login.csrf()),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.set_cookie("mc_session").is_none());
    let err = wrong
        .body
        .find("id=\"password-error\"")
        .expect("error next to the password");
    assert!(wrong.body[err..].contains("email or password is incorrect"));
    assert!(wrong.body.contains("aria-describedby=\"password-error\""));
    assert!(
        wrong.body.contains("value=\"owner@acme.example\""),
        "email kept"
    );

    let good = post(
        &app,
        "acme.mc.test",
        "/login",
        &format!("mc_csrf={visitor}"),
        &[
            ("email", "owner@acme.example"),
            ("password", "correct horse battery"),
            ("csrf", &login.csrf()),
        ],
    )
    .await;
    assert_eq!(good.status, 303, "{}", good.body);
    assert_eq!(good.header("location"), "/");
    let cookie = good.set_cookie("mc_session").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        cookie.contains("Path=/") && cookie.contains("Secure"),
        "{cookie}"
    );
    let session = cookie_value(&cookie);

    let home = get(&app, "acme.mc.test", "/", &format!("mc_session={session}")).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("acme Org"));
    assert!(home.body.contains("Welcome back, Owner"));
    assert!(home.body.contains("class=\"usage-bar"));
    assert!(!home.header("content-security-policy").is_empty());
    // Parallel page loads do not rotate the session (no refresh-reuse revocation).
    let cookie = format!("mc_session={session}");
    let (a, b) = tokio::join!(
        get(&app, "acme.mc.test", "/", &cookie),
        get(&app, "acme.mc.test", "/", &cookie),
    );
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(
        get(&app, "acme.mc.test", "/", &format!("mc_session={session}"))
            .await
            .status,
        200
    );

    // Signed out: home redirects to the sign-in page.
    let anonymous = get(&app, "acme.mc.test", "/", "").await;
    assert_eq!(
        (anonymous.status, anonymous.header("location").as_str()),
        (303, "/login")
    );
}

#[tokio::test]
async fn forged_and_cross_site_posts_are_refused() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let session = sign_in(
        &app,
        "acme.mc.test",
        "owner@acme.example",
        "correct horse battery",
    )
    .await;
    let cookie = format!("mc_session={session}");
    let forged = post(
        &app,
        "acme.mc.test",
        "/logout",
        &cookie,
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.header("content-type").starts_with("text/html"));
    // Still signed in.
    assert_eq!(get(&app, "acme.mc.test", "/", &cookie).await.status, 200);
    // The login form without its double-submit cookie.
    let login = get(&app, "acme.mc.test", "/login", "").await;
    let no_cookie = post(
        &app,
        "acme.mc.test",
        "/login",
        "",
        &[
            ("email", "owner@acme.example"),
            ("password", "correct horse battery"),
            ("csrf", &login.csrf()),
        ],
    )
    .await;
    assert_eq!(no_cookie.status, 403);
    // A cross-site submission with the right token is refused too.
    let home = get(&app, "acme.mc.test", "/", &cookie).await;
    let cross = page(
        &app,
        Method::POST,
        "acme.mc.test",
        "/logout",
        &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
        Some(form(&[("csrf", &home.csrf())])),
    )
    .await;
    assert_eq!(cross.status, 403);
    let other_origin = page(
        &app,
        Method::POST,
        "acme.mc.test",
        "/logout",
        &[("cookie", &cookie), ("origin", "https://evil.mc.test")],
        Some(form(&[("csrf", &home.csrf())])),
    )
    .await;
    assert_eq!(other_origin.status, 403);
    // What Chromium sends for our own form under `Referrer-Policy: no-referrer`: the
    // unforgeable `Sec-Fetch-Site: same-origin` with `Origin: null`. It is our form: accepted
    // (the real browser test found this).
    let login = get(&app, "acme.mc.test", "/login", "").await;
    let visitor = format!(
        "mc_csrf={}",
        cookie_value(&login.set_cookie("mc_csrf").expect("mc_csrf cookie"))
    );
    let own_form = page(
        &app,
        Method::POST,
        "acme.mc.test",
        "/login",
        &[
            ("cookie", &visitor),
            ("sec-fetch-site", "same-origin"),
            ("origin", "null"),
        ],
        Some(form(&[
            ("email", "owner@acme.example"),
            ("password", "correct horse battery"),
            ("csrf", &login.csrf()),
        ])),
    )
    .await;
    assert_eq!(own_form.status, 303, "{}", own_form.body);
    assert_eq!(get(&app, "acme.mc.test", "/", &cookie).await.status, 200);
}

#[tokio::test]
async fn logout_ends_the_session_for_the_api_too() {
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let before = live_sessions(&app, &t.token).await;
    let session = sign_in(
        &app,
        "acme.mc.test",
        "owner@acme.example",
        "correct horse battery",
    )
    .await;
    assert_eq!(
        live_sessions(&app, &t.token).await,
        before + 1,
        "the web session is an API session"
    );
    let cookie = format!("mc_session={session}");
    let home = get(&app, "acme.mc.test", "/", &cookie).await;
    let out = post(
        &app,
        "acme.mc.test",
        "/logout",
        &cookie,
        &[("csrf", &home.csrf())],
    )
    .await;
    assert_eq!(
        (out.status, out.header("location").as_str()),
        (303, "/login")
    );
    let cleared = out.set_cookie("mc_session").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        live_sessions(&app, &t.token).await,
        before,
        "the session list shows it ended"
    );
    let after = get(&app, "acme.mc.test", "/", &cookie).await;
    assert_eq!(
        (after.status, after.header("location").as_str()),
        (303, "/login")
    );
    // The sign-in page shows the flash message.
    let flash = out.set_cookie("mc_flash").unwrap();
    let login = get(
        &app,
        "acme.mc.test",
        "/login",
        &format!("mc_flash={}", cookie_value(&flash)),
    )
    .await;
    assert!(
        login.body.contains("You have been signed out."),
        "{}",
        login.body
    );
}

#[tokio::test]
async fn a_cookie_of_tenant_a_on_tenant_b_redirects_to_login() {
    let app = spawn_app().await;
    app.signup("acme").await;
    app.signup("beta").await;
    let session = sign_in(
        &app,
        "acme.mc.test",
        "owner@acme.example",
        "correct horse battery",
    )
    .await;
    let cookie = format!("mc_session={session}");
    let other = get(&app, "beta.mc.test", "/", &cookie).await;
    assert_eq!(
        (other.status, other.header("location").as_str()),
        (303, "/login")
    );
    assert!(!other.body.contains("acme Org"));
    assert!(
        other
            .set_cookie("mc_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    // Still valid on its own tenant.
    assert_eq!(get(&app, "acme.mc.test", "/", &cookie).await.status, 200);
}

#[tokio::test]
async fn a_browser_gets_an_html_404_and_the_api_keeps_its_problems() {
    let app = spawn_app().await;
    app.signup("acme").await;
    let missing = get(&app, "acme.mc.test", "/no-such-page", "").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.header("content-type").starts_with("text/html"),
        "{}",
        missing.body
    );
    assert!(missing.body.contains("Page not found"));
    app.get("/no-such-endpoint", &[]).await.problem(404);
}

#[tokio::test]
async fn two_factor_sign_in_asks_for_the_code_next_to_its_field() {
    use crate::helpers::{totp_code, totp_secret_of};
    use serde_json::json;
    let app = spawn_app().await;
    let t = app.signup("acme").await;
    let auth = bearer(&t.token);
    let setup = app
        .post(
            "/api/v1/auth/2fa/setup",
            &[("authorization", &auth)],
            json!({}),
        )
        .await;
    let secret = totp_secret_of(setup.ok(200)["secret"].as_str().unwrap());
    app.post(
        "/api/v1/auth/2fa/enable",
        &[("authorization", &auth)],
        json!({"code": totp_code(&secret, app.clock_now())}),
    )
    .await
    .ok(200);

    let login = get(&app, "acme.mc.test", "/login", "").await;
    let visitor = format!(
        "mc_csrf={}",
        cookie_value(&login.set_cookie("mc_csrf").unwrap())
    );
    let fields = |otp: &str| {
        vec![
            ("email", "owner@acme.example".to_string()),
            ("password", "correct horse battery".to_string()),
            ("otp", otp.to_string()),
            ("csrf", login.csrf()),
        ]
    };
    let as_refs = |f: &[(&'static str, String)]| -> Vec<(&'static str, String)> { f.to_vec() };
    let send = |f: Vec<(&'static str, String)>| {
        let refs: Vec<(&str, String)> = as_refs(&f);
        let visitor = visitor.clone();
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = refs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(app, "acme.mc.test", "/login", &visitor, &pairs).await
        }
    };
    let asked = send(fields("")).await;
    assert_eq!(asked.status, 401, "{}", asked.body);
    assert!(
        asked.body.contains("name=\"otp\""),
        "the code field appears"
    );
    assert!(asked.set_cookie("mc_session").is_none());
    let wrong = send(fields("000001")).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("id=\"otp-error\""), "{}", wrong.body);
    // The next time step: the code used to enable two-factor cannot be replayed.
    app.advance(chrono::Duration::seconds(30));
    let good = send(fields(&totp_code(&secret, app.clock_now()))).await;
    assert_eq!(good.status, 303, "{}", good.body);
    assert!(good.set_cookie("mc_session").is_some());
}
