use reqwest::StatusCode;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{PASSWORD, TestApp, hidden_value, location, signed_up};

backend_tests!(
    the_authenticator_app_turns_on_only_after_a_right_code,
    sign_in_with_an_authenticator_asks_for_a_code_and_refuses_replays,
    a_half_signed_in_session_cannot_reach_the_account,
    too_many_wrong_codes_pause_the_second_step,
    a_recovery_code_works_once,
    a_removed_second_factor_is_no_longer_asked_for,
    email_codes_turn_on_with_a_mailed_code_and_sign_the_person_in,
    email_codes_expire_and_allow_five_attempts,
    a_person_with_both_factors_chooses_at_sign_in,
);

/// Sets up the authenticator app for the signed-in user; returns its TOTP and recovery codes.
pub async fn enrol_totp(app: &TestApp) -> (TOTP, Vec<String>) {
    let csrf = app.csrf_token("/account/security").await;
    let start = app
        .post_form("/account/security/totp/setup", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(location(&start), "/account/security/totp");
    let setup = app.page("/account/security/totp").await;
    assert!(
        setup.contains("<svg") && setup.contains("role=\"img\""),
        "an inline QR code"
    );
    let secret = between(&setup, "<p class=\"secret\" id=\"secret\">", "</p>").replace(' ', "");
    assert!(setup.contains("autocomplete=\"one-time-code\""));
    let bytes = Secret::Encoded(secret.clone())
        .to_bytes()
        .expect("base32 secret");
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()).expect("totp");

    let csrf = hidden_value(&setup, "csrf_token").expect("csrf");
    let code = code_at(&totp, app.clock.now());
    let done = app
        .post_form(
            "/account/security/totp/confirm",
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    let page = done.text().await.unwrap_or_default();
    assert!(page.contains("this is the only time we show them"));
    let list = between(
        &page,
        "<ul class=\"codes\" aria-label=\"Recovery codes\">",
        "</ul>",
    );
    let codes: Vec<String> = list
        .split("<li>")
        .skip(1)
        .map(|item| {
            item.split("</li>")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(codes.len(), 10);
    // The step just used cannot sign in again: move on to the next one.
    app.clock.advance(30);
    (totp, codes)
}

pub fn code_at(totp: &TOTP, now: i64) -> String {
    totp.generate(now as u64)
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .map(|i| i + start.len())
        .unwrap_or_else(|| panic!("{start} in page"));
    let to = text[from..]
        .find(end)
        .map(|i| i + from)
        .unwrap_or(text.len());
    text[from..to].to_string()
}

pub async fn submit_code(app: &TestApp, method: &str, code: &str) -> reqwest::Response {
    let page = app.page(&format!("/login/verify?method={method}")).await;
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");
    app.post_form(
        "/login/verify",
        &[("csrf_token", &csrf), ("method", method), ("code", code)],
    )
    .await
}

async fn sign_in_to_second_step(app: &TestApp, email: &str) {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&response).starts_with("/login/verify"),
        "{}",
        location(&response)
    );
}

async fn the_authenticator_app_turns_on_only_after_a_right_code(app: TestApp) {
    let email = signed_up(&app).await;
    let csrf = app.csrf_token("/account/security").await;
    app.post_form("/account/security/totp/setup", &[("csrf_token", &csrf)])
        .await;
    let setup = app.page("/account/security/totp").await;
    let csrf = hidden_value(&setup, "csrf_token").expect("csrf");
    let wrong = app
        .post_form(
            "/account/security/totp/confirm",
            &[("csrf_token", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .text()
            .await
            .unwrap_or_default()
            .contains("That code is not right.")
    );
    assert!(
        app.page("/account/security")
            .await
            .contains("Set up authenticator app"),
        "still off"
    );
    // Not yet on: signing in needs no code.
    app.logout().await;
    assert_eq!(location(&app.login(&email, PASSWORD).await), "/account");

    let (_, codes) = enrol_totp(&app).await;
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
    );
    // The download button posts back the codes the page showed; the server keeps no copy.
    let csrf = app.csrf_token("/account/security").await;
    let joined = codes.join(" ");
    let download = app
        .post_form(
            "/account/security/recovery-codes.txt",
            &[("csrf_token", &csrf), ("codes", &joined)],
        )
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.headers().get("content-disposition").is_some());
    assert!(
        download
            .text()
            .await
            .unwrap_or_default()
            .contains(&codes[0])
    );
    let junk = app
        .post_form(
            "/account/security/recovery-codes.txt",
            &[
                ("csrf_token", &csrf),
                ("codes", "<script>alert(1)</script>"),
            ],
        )
        .await;
    assert_eq!(
        junk.status(),
        StatusCode::BAD_REQUEST,
        "only code-shaped text"
    );
    let security = app.page("/account/security").await;
    assert!(security.contains("Sign-in asks for a code from your authenticator app."));
    assert!(security.contains("10 of 10 unused"));
    assert!(!security.contains(&codes[0]), "shown once");
    assert_eq!(
        app.get("/account/security/recovery-codes.txt")
            .await
            .status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "nothing to fetch later"
    );

    // The secret is encrypted at rest.
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("store")
        .expect("user");
    let factor = app
        .store
        .totp_factor(&user.id)
        .await
        .expect("store")
        .expect("factor");
    let secret = between(&setup, "<p class=\"secret\" id=\"secret\">", "</p>").replace(' ', "");
    assert!(!factor.secret_enc.contains(&secret));
}

async fn sign_in_with_an_authenticator_asks_for_a_code_and_refuses_replays(app: TestApp) {
    let email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    app.logout().await;

    sign_in_to_second_step(&app, &email).await;
    let page = app.page("/login/verify").await;
    assert!(
        page.contains("Code from your authenticator app")
            && page.contains("autocomplete=\"one-time-code\"")
    );
    assert!(page.contains("Use a recovery code"));
    let wrong = submit_code(&app, "totp", "123456").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let code = code_at(&totp, app.clock.now());
    let ok = submit_code(&app, "totp", &code).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/account");
    assert!(app.page("/account").await.contains(&email));

    // The same code again, within its 30 seconds: refused.
    app.logout().await;
    sign_in_to_second_step(&app, &email).await;
    let replay = submit_code(&app, "totp", &code).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert!(
        replay
            .text()
            .await
            .unwrap_or_default()
            .contains("That code was already used.")
    );
    app.clock.advance(30);
    let next = submit_code(&app, "totp", &code_at(&totp, app.clock.now())).await;
    assert_eq!(next.status(), StatusCode::SEE_OTHER);
}

async fn a_half_signed_in_session_cannot_reach_the_account(app: TestApp) {
    let email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    app.logout().await;
    sign_in_to_second_step(&app, &email).await;
    let account = app.get("/account").await;
    assert_eq!(account.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&account), "/login?next=/account");
    assert_eq!(
        app.get("/account/security").await.status(),
        StatusCode::SEE_OTHER
    );

    // The second step waits 15 minutes at most.
    app.clock.advance(15 * 60 + 1);
    let late = app.get("/login/verify").await;
    assert_eq!(location(&late), "/login");
    let code = code_at(&totp, app.clock.now());
    let csrf = app.csrf_token("/login").await;
    let refused = app
        .post_form(
            "/login/verify",
            &[("csrf_token", &csrf), ("method", "totp"), ("code", &code)],
        )
        .await;
    assert_eq!(location(&refused), "/login");
    assert_eq!(app.get("/account").await.status(), StatusCode::SEE_OTHER);
}

async fn too_many_wrong_codes_pause_the_second_step(app: TestApp) {
    let email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    app.logout().await;
    sign_in_to_second_step(&app, &email).await;
    for _ in 0..5 {
        assert_eq!(
            submit_code(&app, "totp", "000000").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let paused = submit_code(&app, "totp", &code_at(&totp, app.clock.now())).await;
    assert_eq!(paused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        paused
            .text()
            .await
            .unwrap_or_default()
            .contains("Too many wrong codes.")
    );
    assert_eq!(app.get("/account").await.status(), StatusCode::SEE_OTHER);
}

async fn a_recovery_code_works_once(app: TestApp) {
    let email = signed_up(&app).await;
    let (_, codes) = enrol_totp(&app).await;
    app.logout().await;

    sign_in_to_second_step(&app, &email).await;
    let page = app.page("/login/verify?method=recovery").await;
    assert!(page.contains("Recovery code"));
    let used = submit_code(&app, "recovery", &codes[3].to_uppercase()).await;
    assert_eq!(used.status(), StatusCode::SEE_OTHER);
    assert!(
        app.page("/account")
            .await
            .contains("You used a recovery code; 9 left.")
    );

    app.logout().await;
    sign_in_to_second_step(&app, &email).await;
    let again = submit_code(&app, "recovery", &codes[3]).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        submit_code(&app, "recovery", &codes[4]).await.status(),
        StatusCode::SEE_OTHER
    );
}

async fn a_removed_second_factor_is_no_longer_asked_for(app: TestApp) {
    let email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    let csrf = app.csrf_token("/account/security").await;
    app.post_form(
        "/account/security/totp/disable",
        &[("csrf_token", &csrf), ("password", "not-my-password")],
    )
    .await;
    assert!(
        app.page("/account/security")
            .await
            .contains("Enter your password or a current code")
    );
    assert!(
        app.page("/account/security")
            .await
            .contains("Sign-in asks for a code"),
        "still on"
    );

    let csrf = app.csrf_token("/account/security").await;
    let code = code_at(&totp, app.clock.now());
    app.post_form(
        "/account/security/totp/disable",
        &[("csrf_token", &csrf), ("code", &code)],
    )
    .await;
    let security = app.page("/account/security").await;
    assert!(security.contains("Your authenticator app was removed."));
    assert!(security.contains("Set up authenticator app"));
    assert!(
        !security.contains("Recovery codes"),
        "recovery codes go with the last factor"
    );

    app.logout().await;
    let response = app.login(&email, PASSWORD).await;
    assert_eq!(location(&response), "/account", "no second step any more");
}

/// Turns codes by email on for the signed-in user with the mailed code (after a wrong one);
/// the recovery codes page appears only when it is the first factor.
pub async fn enable_email_codes(app: &TestApp, email: &str, first_factor: bool) {
    let csrf = app.csrf_token("/account/security").await;
    let start = app
        .post_form(
            "/account/security/email-otp/setup",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(location(&start), "/account/security/email-otp");
    let mail = app.last_mail_to(email).await;
    let code = mailed_code(&mail);
    let page = app.page("/account/security/email-otp").await;
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");
    let wrong = app
        .post_form(
            "/account/security/email-otp/confirm",
            &[("csrf_token", &csrf), ("code", "999999x")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let done = app
        .post_form(
            "/account/security/email-otp/confirm",
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    if first_factor {
        assert_eq!(done.status(), StatusCode::OK);
        let page = done.text().await.unwrap_or_default();
        assert!(page.contains("this is the only time we show them"));
    } else {
        assert_eq!(location(&done), "/account/security");
        assert!(
            app.page("/account/security")
                .await
                .contains("Sign-in codes by email are on.")
        );
    }
}

fn mailed_code(mail: &str) -> String {
    let after = between(mail, "Your code: ", "\n");
    after.trim().to_string()
}

async fn email_codes_turn_on_with_a_mailed_code_and_sign_the_person_in(app: TestApp) {
    let email = signed_up(&app).await;
    enable_email_codes(&app, &email, true).await;
    assert!(
        app.page("/account/security")
            .await
            .contains("Sign-in can send a 6-digit code")
    );
    app.logout().await;

    // With email codes as the only method, the code is mailed right after the password.
    let response = app.login(&email, PASSWORD).await;
    assert_eq!(location(&response), "/login/verify?method=email");
    let page = app.page("/login/verify?method=email").await;
    assert!(page.contains("We sent a 6-digit code to"));
    assert!(page.contains("Code from the email to"));
    let mail = app.last_mail_to(&email).await;
    assert!(mail.contains("It expires in 10 minutes."));
    let code = mailed_code(&mail);
    assert_eq!(code.len(), 6);
    let ok = submit_code(&app, "email", &code).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(app.page("/account").await.contains(&email));

    // A code works once.
    app.logout().await;
    sign_in_to_second_step(&app, &email).await;
    assert_eq!(
        submit_code(&app, "email", &code).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn send_login_code(app: &TestApp, email: &str) -> String {
    let page = app.page("/login/verify?method=email").await;
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");
    app.post_form("/login/verify/email", &[("csrf_token", &csrf)])
        .await;
    mailed_code(&app.last_mail_to(email).await)
}

async fn email_codes_expire_and_allow_five_attempts(app: TestApp) {
    let email = signed_up(&app).await;
    // A code for turning email codes on expires too.
    let csrf = app.csrf_token("/account/security").await;
    app.post_form(
        "/account/security/email-otp/setup",
        &[("csrf_token", &csrf)],
    )
    .await;
    let code = mailed_code(&app.last_mail_to(&email).await);
    app.clock.advance(10 * 60 + 1);
    let csrf = app.csrf_token("/account/security/email-otp").await;
    let late = app
        .post_form(
            "/account/security/email-otp/confirm",
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(late.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        late.text()
            .await
            .unwrap_or_default()
            .contains("That code has expired")
    );
    enable_email_codes(&app, &email, true).await;
    app.logout().await;
    sign_in_to_second_step(&app, &email).await;

    let code = send_login_code(&app, &email).await;
    app.clock.advance(10 * 60 + 1);
    let expired = submit_code(&app, "email", &code).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(
        expired
            .text()
            .await
            .unwrap_or_default()
            .contains("That code has expired")
    );

    let code = send_login_code(&app, &email).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        assert_eq!(
            submit_code(&app, "email", wrong).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The fifth attempt still counts; after it even the right code is refused.
    assert_eq!(
        submit_code(&app, "email", wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let after = submit_code(&app, "email", &code).await;
    assert_ne!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/account").await.status(), StatusCode::SEE_OTHER);

    // Resending is throttled: three mails per 10 minutes, the one sent at sign-in included.
    app.clock.advance(16 * 60);
    sign_in_to_second_step(&app, &email).await;
    for _ in 0..2 {
        send_login_code(&app, &email).await;
    }
    let before = app.mails_to(&email).await.len();
    send_login_code(&app, &email).await;
    assert_eq!(app.mails_to(&email).await.len(), before);
    assert!(
        app.page("/login/verify?method=email")
            .await
            .contains("We already sent several codes.")
    );
}

async fn a_person_with_both_factors_chooses_at_sign_in(app: TestApp) {
    let email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    enable_email_codes(&app, &email, false).await;
    app.logout().await;

    sign_in_to_second_step(&app, &email).await;
    let page = app.page("/login/verify").await;
    assert!(
        page.contains("Code from your authenticator app"),
        "the app is the default"
    );
    assert!(page.contains("Get a code by email") && page.contains("Use a recovery code"));
    let code = send_login_code(&app, &email).await;
    assert_eq!(
        submit_code(&app, "email", &code).await.status(),
        StatusCode::SEE_OTHER
    );

    app.logout().await;
    app.clock.advance(30);
    sign_in_to_second_step(&app, &email).await;
    assert_eq!(
        submit_code(&app, "totp", &code_at(&totp, app.clock.now()))
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}
