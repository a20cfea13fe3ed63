use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, location, unique_email};

backend_tests!(
    signing_up_creates_the_account_and_signs_the_person_in,
    signing_up_with_a_taken_email_is_refused_whatever_its_case,
    a_weak_password_is_refused_with_a_reason_and_the_email_is_kept,
    a_malformed_email_is_refused_beside_the_field,
    the_signup_form_is_accessible_and_works_without_javascript,
);

async fn signing_up_creates_the_account_and_signs_the_person_in(app: TestApp) {
    let email = unique_email();
    let response = app.signup(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");

    let account = app.page("/account").await;
    assert!(account.contains(&email), "the account page shows the email");
    assert!(account.contains("Welcome! Your account is ready. We sent a link to"));
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("store")
        .expect("user exists");
    assert!(
        user.password_hash
            .is_some_and(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"))
    );
}

async fn signing_up_with_a_taken_email_is_refused_whatever_its_case(app: TestApp) {
    let email = unique_email();
    assert_eq!(
        app.signup(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    app.logout().await;

    let shouted = email.to_uppercase();
    let response = app.signup(&shouted, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap_or_default();
    assert!(
        html.contains("An account with this email already exists."),
        "{html}"
    );
    assert!(
        html.contains(&format!("value=\"{shouted}\"")),
        "the typed email is kept"
    );
    assert_eq!(app.store.count_users().await.expect("count"), 1);
}

async fn a_weak_password_is_refused_with_a_reason_and_the_email_is_kept(app: TestApp) {
    let email = unique_email();
    for (password, reason) in [
        ("short", "Use at least 10 characters."),
        ("Password123", "This password is too common."),
        (&*"x".repeat(1025), "Use at most 1024 characters."),
    ] {
        let response = app.signup(&email, password).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}"
        );
        let html = response.text().await.unwrap_or_default();
        assert!(html.contains(reason), "{reason}");
        assert!(
            html.contains(&format!("value=\"{email}\"")),
            "the typed email is kept"
        );
        assert!(
            html.contains("id=\"password-error\""),
            "the message sits beside the field"
        );
        assert!(!html.contains(password), "the password is never echoed");
    }
    assert_eq!(app.store.count_users().await.expect("count"), 0);
}

async fn a_malformed_email_is_refused_beside_the_field(app: TestApp) {
    for email in ["not-an-email", "ann@example", "ann @example.com", ""] {
        let response = app.signup(email, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email:?}"
        );
        let html = response.text().await.unwrap_or_default();
        assert!(html.contains("id=\"email-error\""), "{email:?}");
        assert!(html.contains("aria-invalid=\"true\""));
    }
    assert_eq!(app.store.count_users().await.expect("count"), 0);
}

async fn the_signup_form_is_accessible_and_works_without_javascript(app: TestApp) {
    let html = app.page("/signup").await;
    assert!(html.contains("<form method=\"post\" action=\"/signup\""));
    assert!(html.contains("<label for=\"email\">") && html.contains("id=\"email\""));
    assert!(
        html.contains("<label for=\"password\">") && html.contains("autocomplete=\"new-password\"")
    );
    assert!(html.contains("autocomplete=\"username\""));
    assert!(!html.contains("<script"), "no JavaScript needed");
    assert!(html.contains("href=\"/static/style.css\""));
    let css = app.get("/static/style.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.text()
            .await
            .unwrap_or_default()
            .contains("prefers-color-scheme: dark")
    );
}
