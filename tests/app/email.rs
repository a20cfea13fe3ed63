use reqwest::StatusCode;

use crate::helpers::{
    PASSWORD, TestApp, decode_quoted_printable, location, signed_up, unique_email,
};
use crate::smtp_sink::SmtpSink;

backend_tests!(
    signup_mails_a_link_that_confirms_the_address_once,
    expired_and_forged_verification_links_are_refused,
    resending_the_verification_link_is_throttled,
    with_verification_required_an_unverified_user_cannot_sign_in,
    mail_goes_through_a_real_smtp_server_with_text_and_html_parts,
    a_mail_server_failure_slows_no_page_and_admins_see_the_mail,
    pages_answer_while_the_mail_server_is_still_busy,
);

async fn signup_mails_a_link_that_confirms_the_address_once(app: TestApp) {
    let email = signed_up(&app).await;
    let account = app.page("/account").await;
    assert!(account.contains("not verified"));
    assert!(account.contains("We sent a link to"));

    let mail = app.last_mail_to(&email).await;
    assert!(mail.contains("Subject: Confirm your email address"));
    assert!(mail.contains("Content-Type: text/plain") && mail.contains("Content-Type: text/html"));
    let link = app.link_in(&mail, "/verify-email");

    let confirmed = app.get(&link).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(
        confirmed
            .text()
            .await
            .unwrap_or_default()
            .contains("your email address is confirmed")
    );
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("store")
        .expect("user");
    assert!(user.email_verified);
    assert!(app.page("/account").await.contains(">verified<"));

    let again = app.get(&link).await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(
        again
            .text()
            .await
            .unwrap_or_default()
            .contains("This link was already used")
    );
}

async fn expired_and_forged_verification_links_are_refused(app: TestApp) {
    let email = signed_up(&app).await;
    let link = app.link_in(&app.last_mail_to(&email).await, "/verify-email");

    let forged = app
        .get("/verify-email?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(
        forged
            .text()
            .await
            .unwrap_or_default()
            .contains("This link is not valid")
    );
    let missing = app.get("/verify-email").await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    app.clock.advance(24 * 3600 + 1);
    let expired = app.get(&link).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    assert!(
        expired
            .text()
            .await
            .unwrap_or_default()
            .contains("This link has expired")
    );
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("store")
        .expect("user");
    assert!(!user.email_verified);
}

async fn resending_the_verification_link_is_throttled(app: TestApp) {
    let email = signed_up(&app).await;
    // Three resends an hour, on top of the signup mail.
    for _ in 0..3 {
        let token = app.csrf_token("/account").await;
        let response = app
            .post_form("/account/verify-email", &[("csrf_token", &token)])
            .await;
        assert_eq!(location(&response), "/account");
        let _ = app.page("/account").await;
    }
    assert_eq!(
        app.mails_to(&email).await.len(),
        4,
        "the signup mail and three resends"
    );
    let account = app.page("/account").await;
    assert!(!account.contains("We already sent several links"));
    let token = app.csrf_token("/account").await;
    app.post_form("/account/verify-email", &[("csrf_token", &token)])
        .await;
    assert!(
        app.page("/account")
            .await
            .contains("We already sent several links. Wait")
    );
    assert_eq!(app.mails_to(&email).await.len(), 4);

    // Each mail holds a working link; the newest one confirms the address.
    let link = app.link_in(&app.last_mail_to(&email).await, "/verify-email");
    assert_eq!(app.get(&link).await.status(), StatusCode::OK);
}

async fn with_verification_required_an_unverified_user_cannot_sign_in(mut app: TestApp) {
    app.restart_with(|raw| raw.require_verified_email = true)
        .await;
    let email = unique_email();
    let response = app.signup(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "not signed in yet"
    );
    assert!(
        app.page("/login")
            .await
            .contains("confirm your address, then sign in")
    );

    let refused = app.login(&email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .unwrap_or_default()
            .contains("Confirm your email address before you sign in.")
    );

    let link = app.link_in(&app.last_mail_to(&email).await, "/verify-email");
    assert_eq!(app.get(&link).await.status(), StatusCode::OK);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(app.page("/account").await.contains(&email));
}

async fn mail_goes_through_a_real_smtp_server_with_text_and_html_parts(mut app: TestApp) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    app.restart_with(|raw| raw.smtp_url = Some(smtp)).await;
    let email = signed_up(&app).await;
    app.mail_settled().await;

    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one message reached the SMTP server");
    let mail = decode_quoted_printable(&messages[0]);
    assert!(mail.contains(&format!("To: {email}")));
    assert!(mail.contains("From: Portcullis <no-reply@127.0.0.1>"));
    assert!(mail.contains("multipart/alternative"));
    assert!(mail.contains("Content-Type: text/plain") && mail.contains("Content-Type: text/html"));
    let link = app.link_in(&mail, "/verify-email");
    assert_eq!(app.get(&link).await.status(), StatusCode::OK);
    assert!(
        app.mails_to(&email).await.is_empty(),
        "nothing is written to files when SMTP is set"
    );
}

async fn a_mail_server_failure_slows_no_page_and_admins_see_the_mail(mut app: TestApp) {
    // Nothing listens on port 9 of localhost: every send fails.
    app.restart_with(|raw| raw.smtp_url = Some("smtp://127.0.0.1:9".into()))
        .await;
    let email = unique_email();
    let response = app.signup(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let account = app.page("/account").await;
    assert!(
        account.contains(&email),
        "the account exists and is signed in"
    );

    app.logout().await;
    let token = app.csrf_token("/password/forgot").await;
    let forgot = app
        .post_form(
            "/password/forgot",
            &[("csrf_token", &token), ("email", &email)],
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::OK);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER,
        "password unchanged"
    );

    // Both mails were tried, failed, and wait for their retry; an admin sees them.
    app.mail_settled().await;
    let unsent = app.store.unsent_mail(10).await.unwrap();
    assert_eq!(unsent.len(), 2, "{unsent:?}");
    assert!(
        unsent
            .iter()
            .all(|m| m.recipient == email && m.state == "pending")
    );
    assert!(unsent.iter().all(|m| m.last_error.is_some()));
    app.logout().await;
    crate::admin::admin(&app).await;
    let overview = app.page("/admin").await;
    assert!(
        overview.contains("Mail that could not be sent"),
        "{overview}"
    );
    assert!(overview.contains(&email) && overview.contains("retrying"));
}

async fn pages_answer_while_the_mail_server_is_still_busy(mut app: TestApp) {
    let sink = SmtpSink::start_held().await;
    let smtp = sink.url();
    app.restart_with(|raw| raw.smtp_url = Some(smtp)).await;
    let email = unique_email();
    assert_eq!(
        app.signup(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    // The confirmation mail is stuck in the mail server...
    for _ in 0..200 {
        if sink.held() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sink.held(),
        1,
        "the mail server holds the confirmation mail"
    );
    // ...and the reset page still answers, the same for a known and an unknown address.
    app.logout().await;
    for address in [email.clone(), unique_email()] {
        let token = app.csrf_token("/password/forgot").await;
        let forgot = app
            .post_form(
                "/password/forgot",
                &[("csrf_token", &token), ("email", &address)],
            )
            .await;
        assert_eq!(forgot.status(), StatusCode::OK);
        assert!(
            forgot.text().await.unwrap().contains("If an account"),
            "the usual answer"
        );
    }
    assert!(
        sink.messages().is_empty(),
        "nothing was answered by the mail server yet"
    );
    sink.release();
    app.mail_settled().await;
    for _ in 0..200 {
        if sink.messages().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let messages: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| decode_quoted_printable(m))
        .collect();
    assert_eq!(
        messages.len(),
        2,
        "the confirmation and the reset link, once each"
    );
    assert!(messages.iter().all(|m| m.contains(&format!("To: {email}"))));
    assert!(
        messages
            .iter()
            .any(|m| m.contains("/password/reset?token="))
    );
}
