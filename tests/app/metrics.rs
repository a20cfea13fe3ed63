//! Prometheus metrics: served on their own listener only, and each family moves when its event
//! happens, with the labels an operator's queries and alerts select on.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, metric, signed_up};

backend_tests!(
    metrics_are_served_on_their_own_listener_only,
    sign_ins_are_counted_by_method_and_result,
    a_throttle_refusal_is_counted_by_its_limit,
    token_grants_and_refresh_reuse_are_counted,
    requests_are_counted_by_route_template_never_by_raw_path,
    database_and_session_store_failures_are_counted,
);

pub async fn api_login(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    let response = app
        .fresh_client()
        .post(app.at("/api/v1/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("POST /api/v1/login");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn metrics_are_served_on_their_own_listener_only(app: TestApp) {
    let public = app.get("/metrics").await;
    assert_eq!(
        public.status(),
        StatusCode::NOT_FOUND,
        "not on the public listener"
    );

    let text = app.metrics().await;
    let backend = app.store.backend_name();
    assert_eq!(
        metric(
            &text,
            "portcullis_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("backend", backend),
                ("region", "default")
            ]
        ),
        1.0,
        "{text}"
    );
    assert!(text.contains("# HELP portcullis_build_info"), "{text}");
    assert!(
        metric(
            &text,
            "portcullis_database_connections",
            &[("state", "idle")]
        ) + metric(
            &text,
            "portcullis_database_connections",
            &[("state", "in_use")]
        ) >= 1.0,
        "the pool has connections: {text}"
    );
    assert_eq!(
        metric(&text, "portcullis_password_hash_queue_depth", &[]),
        0.0
    );
    assert!(
        text.contains("portcullis_signing_key_age_seconds "),
        "key age: {text}"
    );
}

async fn sign_ins_are_counted_by_method_and_result(app: TestApp) {
    let email = signed_up(&app).await;
    let (status, _) = api_login(&app, &email, "not the password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&wrong, "/login").await;
    let page = app
        .post_form_with(
            &wrong,
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", &email),
                ("password", "nope"),
            ],
        )
        .await;
    assert_eq!(
        page.status(),
        StatusCode::UNAUTHORIZED,
        "a wrong password signs no one in"
    );
    let (status, _) = api_login(&app, &email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);

    let text = app.metrics().await;
    let sign_ins = |result| {
        metric(
            &text,
            "portcullis_sign_ins_total",
            &[("method", "password"), ("result", result)],
        )
    };
    assert_eq!(sign_ins("failure"), 2.0, "{text}");
    // The sign-up's own sign-in is no password check; the API sign-in is.
    assert_eq!(sign_ins("success"), 1.0, "{text}");
    assert_eq!(sign_ins("throttled"), 0.0, "{text}");
    // Three password hashes at least (sign-up, two wrong, one right) took measurable time.
    assert!(
        metric(
            &text,
            "portcullis_password_hash_duration_seconds_count",
            &[]
        ) >= 4.0,
        "{text}"
    );
    // The sign-up's verification mail went to a file.
    assert!(
        metric(
            &text,
            "portcullis_mail_sent_total",
            &[("transport", "files")]
        ) >= 1.0,
        "{text}"
    );
}

async fn a_throttle_refusal_is_counted_by_its_limit(mut app: TestApp) {
    app.restart_with(|raw| raw.login_max_failures_per_account = 2)
        .await;
    let email = signed_up(&app).await;
    for _ in 0..2 {
        let (status, _) = api_login(&app, &email, "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = api_login(&app, &email, "wrong").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let text = app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "portcullis_throttle_refusals_total",
            &[("limit", "login_account")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "portcullis_sign_ins_total",
            &[("method", "password"), ("result", "throttled")]
        ),
        1.0,
        "{text}"
    );
}

async fn token_grants_and_refresh_reuse_are_counted(app: TestApp) {
    let (id, secret) = crate::helpers::machine_client(&app, "reports").await;
    let (id, secret) = (id.as_str(), secret.as_str());
    for _ in 0..3 {
        let response = crate::helpers::client_credentials_grant(&app, id, secret).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    let email = signed_up(&app).await;
    let (status, tokens) = api_login(&app, &email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let first = tokens["refresh_token"].as_str().expect("refresh_token");
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.fresh_client()
                .post(app.at("/api/v1/token/refresh"))
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
                .expect("POST /api/v1/token/refresh")
                .status()
        }
    };
    assert_eq!(refresh(first.to_string()).await, StatusCode::OK);
    // The rotated token again: reuse, and the family ends.
    assert_eq!(refresh(first.to_string()).await, StatusCode::UNAUTHORIZED);

    let text = app.metrics().await;
    let issued = |grant| {
        metric(
            &text,
            "portcullis_tokens_issued_total",
            &[("grant_type", grant)],
        )
    };
    assert_eq!(issued("client_credentials"), 3.0, "{text}");
    assert_eq!(issued("api_sign_in"), 1.0, "{text}");
    assert_eq!(issued("refresh_token"), 1.0, "{text}");
    assert_eq!(
        metric(&text, "portcullis_refresh_token_reuse_detected_total", &[]),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "portcullis_token_revocations_total",
            &[("kind", "sign_in")]
        ),
        1.0,
        "{text}"
    );
}

async fn requests_are_counted_by_route_template_never_by_raw_path(app: TestApp) {
    for n in 0..3 {
        let id = format!("0000000000000000000000000000000{n}");
        let response = app
            .fresh_client()
            .delete(app.at(&format!("/api/v1/sessions/{id}")))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let missing = app.get(&format!("/no/such/page/{n}")).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);

    let text = app.metrics().await;
    let requests = |route, method, status| {
        metric(
            &text,
            "portcullis_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(
        requests("/api/v1/sessions/{id}", "DELETE", "401"),
        3.0,
        "{text}"
    );
    assert_eq!(requests("unmatched", "GET", "404"), 3.0, "{text}");
    assert_eq!(requests("/health", "GET", "200"), 1.0, "{text}");
    assert!(!text.contains("/no/such/page"), "no raw path is a label");
    assert!(
        !text.contains("00000000000000000000000000000001"),
        "no id is a label"
    );
    let health_latency = metric(
        &text,
        "portcullis_http_request_duration_seconds_bucket",
        &[
            ("route", "/health"),
            ("method", "GET"),
            ("status", "200"),
            ("le", "+Inf"),
        ],
    );
    assert_eq!(health_latency, 1.0, "a histogram with buckets: {text}");
}

/// With the database gone, an API sign-in fails on it (503), and a page with a session cookie
/// fails to load the session: each is counted.
async fn database_and_session_store_failures_are_counted(app: TestApp) {
    let email = signed_up(&app).await;
    assert_eq!(app.get("/account").await.status(), StatusCode::OK);
    app.store.close().await;

    // A database that does not answer is a 503 to try again, not a 500.
    let (status, body) = api_login(&app, &email, PASSWORD).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "unavailable");
    let text = app.metrics().await;
    assert!(
        metric(&text, "portcullis_database_errors_total", &[]) >= 1.0,
        "{text}"
    );
    // With Redis, sessions do not live in the database.
    if app.store.backend_name() == "sqlite" {
        let page = app.get("/account").await;
        assert_eq!(page.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = app.metrics().await;
        assert!(
            metric(&text, "portcullis_session_store_errors_total", &[]) >= 1.0,
            "{text}"
        );
    }
}
