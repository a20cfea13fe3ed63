use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, signed_up, unique_email};

backend_tests!(
    a_form_post_without_the_csrf_token_is_forbidden,
    a_form_post_from_another_site_is_forbidden_even_with_a_token,
    an_oversized_body_is_refused_with_413,
    every_response_carries_the_security_headers,
    unknown_pages_get_the_designed_404,
    health_and_readiness_answer,
    the_forwarded_client_address_counts_only_from_a_trusted_proxy,
    readiness_fails_when_the_redis_session_store_is_gone,
);

async fn a_form_post_without_the_csrf_token_is_forbidden(app: TestApp) {
    let email = unique_email();
    let _ = app.page("/signup").await;
    let response = app
        .post_form("/signup", &[("email", &email), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap_or_default()
            .contains("This form has expired")
    );
    let wrong = app
        .post_form(
            "/signup",
            &[
                ("csrf_token", "forged"),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.store.count_users().await.expect("count"), 0);

    // Sign-out is protected too: a forged post does not end the session.
    signed_up(&app).await;
    let logout = app.post_form("/logout", &[]).await;
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/account").await.status(), StatusCode::OK);
}

async fn a_form_post_from_another_site_is_forbidden_even_with_a_token(app: TestApp) {
    let email = signed_up(&app).await;
    let token = app.csrf_token("/account").await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("referer", "https://evil.example/page"),
    ] {
        let response = app
            .client
            .post(app.at("/logout"))
            .header(header, value)
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .expect("POST");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
    }
    let account = app.page("/account").await;
    assert!(account.contains(&email), "still signed in");
}

async fn an_oversized_body_is_refused_with_413(app: TestApp) {
    let token = app.csrf_token("/login").await;
    let huge = "a".repeat(200 * 1024);
    let response = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", "a@example.com"),
                ("password", &huge),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn every_response_carries_the_security_headers(app: TestApp) {
    for path in [
        "/",
        "/login",
        "/signup",
        "/no-such-page",
        "/health",
        "/static/style.css",
        "/account",
    ] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(
            headers.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
        assert!(headers.get("referrer-policy").is_some(), "{path}");
        // Plain http here, so no HSTS (it would pin a non-https host).
        assert!(headers.get("strict-transport-security").is_none(), "{path}");
    }
    let login = app
        .fresh_client()
        .get(app.at("/login"))
        .send()
        .await
        .expect("GET");
    // A visitor gets the form's CSRF cookie, and no session.
    let cookies: Vec<&str> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = cookies[0];
    assert!(cookie.starts_with("portcullis_csrf="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // Signing in sets the session cookie, HttpOnly and SameSite=Lax too.
    let signed_up = app
        .signup(&crate::helpers::unique_email(), crate::helpers::PASSWORD)
        .await;
    let cookie = signed_up
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("portcullis_session="))
        .expect("a session cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

async fn unknown_pages_get_the_designed_404(app: TestApp) {
    let response = app.get("/no-such-page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let html = response.text().await.unwrap_or_default();
    assert!(html.contains("Page not found"));
    assert!(html.contains("href=\"/static/style.css\""));
    assert!(html.contains("href=\"/\""), "a way back");
}

async fn health_and_readiness_answer(app: TestApp) {
    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    // Neither creates a browser session.
    assert!(app.session_cookie().is_none());

    // With the database gone, the server says it is not ready: at once on SQLite, which it
    // asks on each call; on Postgres once the watcher that asks every second has missed two
    // answers (so `/ready` never waits on a database that does not answer).
    app.store.close().await;
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = app.get("/ready").await.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

/// Signs up through the API as the client `forwarded_for` claims to be; the status.
async fn api_signup_from(app: &TestApp, forwarded_for: &str) -> StatusCode {
    app.fresh_client()
        .post(app.at("/api/v1/signup"))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({ "email": unique_email(), "password": PASSWORD }))
        .send()
        .await
        .expect("signup")
        .status()
}

/// The address the server recorded for a new API sign-in made with `forwarded_for`.
async fn recorded_address(app: &TestApp, email: &str, forwarded_for: &str) -> String {
    let client = app.fresh_client();
    let tokens: serde_json::Value = client
        .post(app.at("/api/v1/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("tokens");
    let access = tokens["access_token"].as_str().expect("access token");
    let list: serde_json::Value = client
        .get(app.at("/api/v1/sessions"))
        .bearer_auth(access)
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("list");
    let current = list["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["current"] == true))
        .expect("the current sign-in is listed");
    current["ip"].as_str().unwrap_or_default().to_string()
}

async fn the_forwarded_client_address_counts_only_from_a_trusted_proxy(mut app: TestApp) {
    let email = unique_email();
    let created = app
        .fresh_client()
        .post(app.at("/api/v1/signup"))
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("signup");
    assert_eq!(created.status(), StatusCode::CREATED);

    // Nobody is trusted by default: a forged header changes nothing.
    assert_eq!(
        recorded_address(&app, &email, "203.0.113.7").await,
        "127.0.0.1"
    );

    app.restart_with(|raw| {
        raw.trusted_proxies = vec!["127.0.0.1"].into();
        raw.signup_max_per_ip = 1;
    })
    .await;
    // The right-most address the proxy did not add itself is the client; what the client
    // wrote further left is not believed.
    assert_eq!(
        recorded_address(&app, &email, "198.51.100.1, 203.0.113.7").await,
        "203.0.113.7"
    );
    // Limits per address count each client apart, not the proxy as one.
    assert_eq!(
        api_signup_from(&app, "192.0.2.10").await,
        StatusCode::CREATED
    );
    assert_eq!(
        api_signup_from(&app, "192.0.2.10").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        api_signup_from(&app, "192.0.2.11").await,
        StatusCode::CREATED
    );
}

async fn readiness_fails_when_the_redis_session_store_is_gone(mut app: TestApp) {
    let mut redis = crate::helpers::OwnRedis::start().await;
    let url = redis.url.clone();
    app.restart_with(|raw| raw.redis_url = Some(url)).await;
    assert_eq!(app.get("/ready").await.status(), StatusCode::OK);

    redis.stop();
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("session store")),
        "{body}"
    );
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}
