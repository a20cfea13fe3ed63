use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, location, signed_up, unique_email};

const NEW_PASSWORD: &str = "violet-harbour-cable-9";

backend_tests!(
    forgot_password_answers_the_same_for_known_and_unknown_emails,
    a_reset_link_sets_a_new_password_once_and_signs_out_every_device,
    expired_and_forged_reset_links_are_refused,
    changing_the_password_needs_the_current_one_and_ends_other_sessions,
);

async fn ask_for_reset(app: &TestApp, email: &str) -> (StatusCode, String) {
    let token = app.csrf_token("/password/forgot").await;
    let response = app
        .post_form(
            "/password/forgot",
            &[("csrf_token", &token), ("email", email)],
        )
        .await;
    (response.status(), response.text().await.unwrap_or_default())
}

async fn forgot_password_answers_the_same_for_known_and_unknown_emails(app: TestApp) {
    let email = signed_up(&app).await;
    app.logout().await;
    assert!(
        app.page("/login")
            .await
            .contains("href=\"/password/forgot\"")
    );

    let unknown = unique_email();
    let (known_status, known_page) = ask_for_reset(&app, &email).await;
    let (unknown_status, unknown_page) = ask_for_reset(&app, &unknown).await;
    assert_eq!(known_status, StatusCode::OK);
    assert_eq!(known_status, unknown_status);
    let message = "we sent it a link to reset the password. The link expires in 1 hour.";
    assert!(known_page.contains(message) && unknown_page.contains(message));
    assert!(
        app.last_mail_to(&email)
            .await
            .contains("Subject: Reset your password")
    );
    assert!(app.mails_to(&unknown).await.is_empty());

    let (status, page) = ask_for_reset(&app, "not an email").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Enter an email address like name@example.com."));
}

async fn a_reset_link_sets_a_new_password_once_and_signs_out_every_device(app: TestApp) {
    let email = signed_up(&app).await;
    // A second browser, signed in elsewhere.
    let other = app.fresh_client_with_cookies();
    let token = app.csrf_token_with(&other, "/login").await;
    app.post_form_with(
        &other,
        "/login",
        &[
            ("csrf_token", &token),
            ("email", &email),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(
        other
            .get(app.at("/account"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    app.logout().await;

    ask_for_reset(&app, &email).await;
    let link = app.link_in(&app.last_mail_to(&email).await, "/password/reset");
    let form = app.page(&link).await;
    assert!(form.contains("autocomplete=\"new-password\""));
    let reset_token = crate::helpers::hidden_value(&form, "token").expect("token field");
    let csrf = crate::helpers::hidden_value(&form, "csrf_token").expect("csrf");

    // A weak password re-shows the form and keeps the link usable.
    let weak = app
        .post_form(
            "/password/reset",
            &[
                ("csrf_token", &csrf),
                ("token", &reset_token),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        weak.text()
            .await
            .unwrap_or_default()
            .contains("Use at least 10 characters.")
    );

    let done = app
        .post_form(
            "/password/reset",
            &[
                ("csrf_token", &csrf),
                ("token", &reset_token),
                ("password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/login");
    assert!(
        app.page("/login")
            .await
            .contains("Your password is changed")
    );

    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED,
        "old password fails"
    );
    assert_eq!(
        other
            .get(app.at("/account"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::SEE_OTHER,
        "the other device is signed out"
    );
    assert_eq!(
        app.login(&email, NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    let reused = app.get(&link).await;
    assert_eq!(reused.status(), StatusCode::GONE);
    assert!(
        reused
            .text()
            .await
            .unwrap_or_default()
            .contains("This link was already used")
    );
    let csrf = app.csrf_token("/account").await;
    let replay = app
        .post_form(
            "/password/reset",
            &[
                ("csrf_token", &csrf),
                ("token", &reset_token),
                ("password", "another-fine-password"),
            ],
        )
        .await;
    assert_eq!(replay.status(), StatusCode::GONE);
}

async fn expired_and_forged_reset_links_are_refused(app: TestApp) {
    let email = signed_up(&app).await;
    app.logout().await;
    ask_for_reset(&app, &email).await;
    let link = app.link_in(&app.last_mail_to(&email).await, "/password/reset");

    let forged = app.get("/password/reset?token=forged-token").await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(
        forged
            .text()
            .await
            .unwrap_or_default()
            .contains("This link is not valid")
    );

    app.clock.advance(3600 + 1);
    let expired = app.get(&link).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    let page = expired.text().await.unwrap_or_default();
    assert!(page.contains("This link has expired") && page.contains("href=\"/password/forgot\""));
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER,
        "password unchanged"
    );
}

async fn changing_the_password_needs_the_current_one_and_ends_other_sessions(app: TestApp) {
    let email = signed_up(&app).await;
    let other = app.fresh_client_with_cookies();
    let token = app.csrf_token_with(&other, "/login").await;
    app.post_form_with(
        &other,
        "/login",
        &[
            ("csrf_token", &token),
            ("email", &email),
            ("password", PASSWORD),
        ],
    )
    .await;

    let csrf = app.csrf_token("/account/password").await;
    let wrong = app
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", "not-my-password"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .text()
            .await
            .unwrap_or_default()
            .contains("That is not your current password.")
    );

    let csrf = app.csrf_token("/account/password").await;
    let changed = app
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    let account = app.page("/account").await;
    assert!(
        account.contains("Your password is changed."),
        "this session continues"
    );
    assert_eq!(
        other
            .get(app.at("/account"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::SEE_OTHER
    );

    app.logout().await;
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(&email, NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}
