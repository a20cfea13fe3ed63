use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, location, signed_up, unique_email};

backend_tests!(
    signing_in_with_the_right_password_reaches_the_account_with_a_new_session_id,
    a_wrong_password_and_an_unknown_email_get_the_same_answer,
    repeated_failures_pause_sign_in_for_that_account_until_the_window_passes,
    next_sends_the_person_back_to_a_local_page_only,
    signing_out_ends_the_session_on_the_server,
    visitors_to_the_account_page_are_sent_to_sign_in,
);

async fn signing_in_with_the_right_password_reaches_the_account_with_a_new_session_id(
    app: TestApp,
) {
    let email = signed_up(&app).await;
    assert_eq!(app.logout().await.status(), StatusCode::SEE_OTHER);

    // The login page starts an anonymous session (for its CSRF token)…
    let _ = app.page("/login").await;
    let before = app.session_cookie().expect("anonymous session");
    let response = app.login(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");
    // …and signing in replaces its id, so a planted id is worthless.
    let after = app.session_cookie().expect("signed-in session");
    assert_ne!(before, after);

    let account = app.page("/account").await;
    assert!(account.contains(&email));
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("store")
        .expect("user");
    assert!(user.last_login_at.is_some());
}

async fn a_wrong_password_and_an_unknown_email_get_the_same_answer(app: TestApp) {
    let email = signed_up(&app).await;
    app.logout().await;

    let wrong = app.login(&email, "not-the-password-1").await;
    let wrong_status = wrong.status();
    let wrong_html = wrong.text().await.unwrap_or_default();
    let unknown = app.login(&unique_email(), PASSWORD).await;
    let unknown_status = unknown.status();
    let unknown_html = unknown.text().await.unwrap_or_default();

    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_status, unknown_status);
    assert!(wrong_html.contains("Wrong email or password."));
    assert!(unknown_html.contains("Wrong email or password."));
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "still signed out"
    );
}

async fn repeated_failures_pause_sign_in_for_that_account_until_the_window_passes(app: TestApp) {
    let email = signed_up(&app).await;
    app.logout().await;
    for attempt in 1..=5 {
        let response = app.login(&email, "not-the-password-1").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // Now even the right password waits, with a clear message.
    let paused = app.login(&email, PASSWORD).await;
    assert_eq!(paused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(paused.headers().get("retry-after").is_some());
    let html = paused.text().await.unwrap_or_default();
    assert!(html.contains("Too many failed sign-in attempts"), "{html}");
    assert!(html.contains("Wait 15 minutes"), "{html}");

    // The count lives in the database, so a restarted server still remembers it.
    let mut app = app;
    app.restart().await;
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    app.clock.advance(15 * 60 + 1);
    let response = app.login(&email, PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the pause is over"
    );
}

async fn next_sends_the_person_back_to_a_local_page_only(app: TestApp) {
    let email = signed_up(&app).await;
    app.logout().await;
    let response = app
        .login_with_next(&email, PASSWORD, "/account?tab=profile")
        .await;
    assert_eq!(location(&response), "/account?tab=profile");
    app.logout().await;

    for evil in [
        "https://evil.example/phish",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let response = app.login_with_next(&email, PASSWORD, evil).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/account", "{evil} is refused");
        app.logout().await;
    }

    // The form never even carries an external `next`.
    let html = app.page("/login?next=https://evil.example").await;
    assert!(html.contains("name=\"next\" value=\"/account\""));
}

async fn signing_out_ends_the_session_on_the_server(app: TestApp) {
    signed_up(&app).await;
    let cookie = app.session_cookie().expect("session cookie");
    let response = app.logout().await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert!(app.page("/").await.contains("You have signed out."));

    // Replaying the old cookie from another browser gets nowhere: the session is gone.
    let replay = app
        .fresh_client()
        .get(app.at("/account"))
        .header("cookie", format!("portcullis_session={cookie}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&replay), "/login?next=/account");
}

async fn visitors_to_the_account_page_are_sent_to_sign_in(app: TestApp) {
    let response = app.get("/account").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?next=/account");
    let html = app.page("/login?next=/account").await;
    assert!(html.contains("name=\"next\" value=\"/account\""));
    assert!(html.contains("autocomplete=\"current-password\""));
}
