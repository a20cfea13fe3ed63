//! Visitors who are not signed in cost no storage: their forms carry a signed token bound to a
//! cookie (not a session row), which expires and is worth nothing with another cookie.

use futures::future::join_all;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};

use crate::helpers::{PASSWORD, TestApp, hidden_value, location, signed_up};

backend_tests!(
    cookieless_visits_of_the_forms_write_no_session_row,
    a_visitor_token_works_only_with_its_own_cookie_and_expires,
);

/// Rows in the SQL session store (the Postgres variant runs without Redis for this).
async fn session_rows(app: &TestApp) -> i64 {
    use portcullis::store::Db;
    let count = match &app.store.db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar("select count(*) from tower_sessions")
                .fetch_one(pool)
                .await
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar("select count(*) from tower_sessions.session")
                .fetch_one(pool)
                .await
        }
    };
    count.expect("count sessions")
}

async fn cookieless_visits_of_the_forms_write_no_session_row(mut app: TestApp) {
    app.restart_with(|raw| raw.redis_url = None).await;
    // One real sign-in, so the table exists and holds a row to compare against.
    let email = signed_up(&app).await;
    let before = session_rows(&app).await;

    let paths = [
        "/login",
        "/signup",
        "/password/forgot",
        "/login?next=/account",
        "/",
    ];
    let visits = (0..60).map(|n| {
        let app = &app;
        let path = paths[n % paths.len()];
        async move {
            let response = app
                .fresh_client()
                .get(app.at(path))
                .send()
                .await
                .expect("GET");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let cookies: Vec<String> = response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().expect("ascii").to_string())
                .collect();
            assert!(
                !cookies.iter().any(|c| c.starts_with("portcullis_session=")),
                "{path} starts no session: {cookies:?}"
            );
            let html = response.text().await.expect("body");
            (path, cookies, html)
        }
    });
    for (path, cookies, html) in join_all(visits).await {
        if let Some(token) = hidden_value(&html, "csrf_token") {
            assert!(token.starts_with("v1."), "{path}: a visitor token");
            assert!(
                cookies.iter().any(|c| c.starts_with("portcullis_csrf=")
                    && c.contains("HttpOnly")
                    && c.contains("SameSite=Lax")),
                "{path}: the token's cookie is set: {cookies:?}"
            );
        }
    }
    assert_eq!(session_rows(&app).await, before, "60 visits wrote no row");

    // The forms still work: a visitor with a cookie jar signs in with the visitor token.
    let browser = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&browser, "/login").await;
    assert!(csrf.starts_with("v1."));
    let signed_in = app
        .post_form_with(
            &browser,
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in), "/account");
}

async fn a_visitor_token_works_only_with_its_own_cookie_and_expires(app: TestApp) {
    let email = signed_up(&app).await;
    let shown = app
        .fresh_client()
        .get(app.at("/login"))
        .send()
        .await
        .expect("GET");
    let cookie = shown
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("portcullis_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("a visitor cookie")
        .to_string();
    let token = hidden_value(&shown.text().await.expect("body"), "csrf_token").expect("token");
    let post = |cookie: String| {
        let app = &app;
        let fields = [
            ("csrf_token", token.clone()),
            ("email", email.clone()),
            ("password", PASSWORD.to_string()),
        ];
        async move {
            app.fresh_client()
                .post(app.at("/login"))
                .header(ORIGIN, &app.url)
                .header(COOKIE, cookie)
                .form(&fields)
                .send()
                .await
                .expect("POST /login")
                .status()
        }
    };
    // Another visitor's cookie (an attacker's own), or none: refused.
    let other = format!("portcullis_csrf={}", "A".repeat(43));
    assert_eq!(post(other).await, StatusCode::FORBIDDEN);
    assert_eq!(post(String::new()).await, StatusCode::FORBIDDEN);
    // A forged signature with the right cookie: refused.
    let forged = {
        let app = &app;
        let cookie = cookie.clone();
        let email = email.clone();
        async move {
            app.fresh_client()
                .post(app.at("/login"))
                .header(ORIGIN, &app.url)
                .header(COOKIE, cookie)
                .form(&[
                    (
                        "csrf_token",
                        format!("v1.{}.{}", app.clock.now(), "0".repeat(64)),
                    ),
                    ("email", email),
                    ("password", PASSWORD.to_string()),
                ])
                .send()
                .await
                .expect("POST /login")
                .status()
        }
    };
    assert_eq!(forged.await, StatusCode::FORBIDDEN);
    // Two hours and a second later, the token has expired.
    app.clock.advance(2 * 3600 + 1);
    assert_eq!(post(cookie.clone()).await, StatusCode::FORBIDDEN);
    app.clock.advance(-(2 * 3600 + 1));
    // With its own cookie, in time, it signs in.
    assert_eq!(post(cookie).await, StatusCode::SEE_OTHER);
}
