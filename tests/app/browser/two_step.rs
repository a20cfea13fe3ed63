//! Two-step sign-in in a real browser: the authenticator app set up from the QR page (the test
//! reads the secret the page shows, as a person types it into their app), recovery codes, codes
//! by email through a real SMTP server, and a second step inside a relying app's sign-in.

use totp_rs::{Algorithm, Secret, TOTP};

use super::relying_app::{RelyingApp, person, sign_in_here};
use super::{Browser, Tab};
use crate::helpers::{PASSWORD, TestApp, decode_quoted_printable, signed_up};
use crate::smtp_sink::SmtpSink;
use crate::two_factor::{code_at, enrol_totp};

backend_tests!(
    an_authenticator_app_set_up_from_the_qr_page_is_asked_at_sign_in_and_a_recovery_code_works_once,
    codes_by_email_arrive_by_smtp_and_sign_the_person_in,
    a_second_step_inside_a_relying_app_sign_in_returns_to_the_app,
    a_stale_session_confirms_it_is_the_person_before_adding_a_factor,
);

async fn sign_in(tab: &Tab, app: &TestApp, email: &str) {
    tab.open(&app.at("/login")).await;
    sign_in_here(tab, email).await;
}

async fn sign_out(tab: &Tab, app: &TestApp) {
    tab.open(&app.at("/account")).await;
    tab.press("Sign out").await;
    tab.assert_reads("You have signed out.").await;
}

async fn an_authenticator_app_set_up_from_the_qr_page_is_asked_at_sign_in_and_a_recovery_code_works_once(
    app: TestApp,
) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let email = person(&app).await;
    let tab = browser.window().await;
    sign_in(&tab, &app, &email).await;

    tab.open(&app.at("/account/security")).await;
    tab.press("Set up authenticator app").await;
    tab.assert_at("/account/security/totp").await;
    assert_eq!(tab.count("figure.qr svg").await, 1, "a QR code to scan");
    let shown = tab.texts("#secret").await;
    let secret = shown.first().expect("the secret is shown").replace(' ', "");
    let bytes = Secret::Encoded(secret).to_bytes().expect("a base32 secret");
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()).expect("totp");
    tab.fill("code", &code_at(&totp, app.clock.now())).await;
    tab.press("Turn on").await;
    tab.assert_reads("this is the only time we show them").await;
    let codes = tab.texts("ul.codes li").await;
    assert_eq!(codes.len(), 10, "ten recovery codes: {codes:?}");
    tab.press("I saved my codes").await;
    tab.assert_at("/account/security").await;
    sign_out(&tab, &app).await;

    // RFC 6238 §5.2: the step used to set up cannot sign in; the next one can.
    app.clock.advance(30);
    sign_in(&tab, &app, &email).await;
    tab.assert_at("/login/verify").await;
    tab.fill("code", &code_at(&totp, app.clock.now())).await;
    tab.press("Continue").await;
    tab.assert_at("/account").await;
    sign_out(&tab, &app).await;

    sign_in(&tab, &app, &email).await;
    tab.press("Use a recovery code").await;
    tab.fill("code", &codes[0]).await;
    tab.press("Continue").await;
    tab.assert_at("/account").await;
    tab.assert_reads("You used a recovery code; 9 left.").await;
    sign_out(&tab, &app).await;

    sign_in(&tab, &app, &email).await;
    tab.press("Use a recovery code").await;
    tab.fill("code", &codes[0]).await;
    tab.press("Continue").await;
    tab.assert_at("/login/verify").await;
    tab.assert_reads("That code is not right.").await;
    tab.assert_no_problems();
}

/// The 6-digit code of the `nth` code mail (from 1) the SMTP server received for `to`. Mail is
/// sent by the queue's worker after the page answers, so this waits (up to 10 s) for it.
async fn mailed_code(smtp: &SmtpSink, to: &str, nth: usize) -> String {
    const MARK: &str = "Your code: ";
    for _ in 0..100 {
        let codes: Vec<String> = smtp
            .messages()
            .iter()
            .map(|raw| decode_quoted_printable(raw))
            .filter(|mail| mail.contains(to))
            .filter_map(|mail| {
                let at = mail.find(MARK)? + MARK.len();
                mail.get(at..at + 6).map(str::to_string)
            })
            .collect();
        if let Some(code) = codes.get(nth - 1) {
            return code.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("code mail {nth} to {to} never arrived");
}

async fn codes_by_email_arrive_by_smtp_and_sign_the_person_in(mut app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let smtp = SmtpSink::start().await;
    let smtp_url = smtp.url();
    app.restart_with(|raw| raw.smtp_url = Some(smtp_url)).await;
    let email = person(&app).await;
    let tab = browser.window().await;
    sign_in(&tab, &app, &email).await;

    tab.open(&app.at("/account/security")).await;
    tab.press("Turn on codes by email").await;
    tab.assert_reads("We sent a 6-digit code to").await;
    tab.fill("code", &mailed_code(&smtp, &email, 1).await).await;
    tab.press("Turn on").await;
    tab.assert_reads("this is the only time we show them").await;
    sign_out(&tab, &app).await;

    sign_in(&tab, &app, &email).await;
    tab.assert_at("/login/verify").await;
    tab.assert_reads("We sent a 6-digit code to").await;
    tab.fill("code", &mailed_code(&smtp, &email, 2).await).await;
    tab.press("Continue").await;
    tab.assert_at("/account").await;
    tab.assert_no_problems();
}

async fn a_second_step_inside_a_relying_app_sign_in_returns_to_the_app(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    // No consent page: the answer to the second step goes straight on to the app.
    let rp = RelyingApp::register(&app, &["--skip-consent"]).await;
    // The HTTP client signs up and sets up the app; the browser only signs in.
    let email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    let tab = browser.window().await;

    let request = rp.request(None);
    tab.open(&request.url).await;
    tab.assert_at("/login").await;
    tab.fill("email", &email).await;
    tab.fill("password", PASSWORD).await;
    tab.press("Sign in").await;
    tab.assert_at("/login/verify").await;
    tab.fill("code", &code_at(&totp, app.clock.now())).await;
    tab.press("Continue").await;
    assert_eq!(rp.redeem(&tab, request).await.0, email);
    tab.assert_no_problems();
}

async fn a_stale_session_confirms_it_is_the_person_before_adding_a_factor(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let email = person(&app).await;
    let tab = browser.window().await;
    sign_in(&tab, &app, &email).await;
    app.clock.advance(16 * 60);

    tab.open(&app.at("/account/security")).await;
    tab.press("Set up authenticator app").await;
    tab.assert_reads("Confirm it is you").await;
    tab.assert_reads("Nothing was changed yet.").await;
    tab.fill("password", "not-my-password-1").await;
    tab.press("Confirm").await;
    tab.assert_reads("That did not match.").await;
    tab.fill("password", PASSWORD).await;
    tab.press("Confirm").await;
    tab.assert_at("/account/security").await;
    tab.assert_reads("Thanks. Now repeat what you were doing.")
        .await;
    tab.press("Set up authenticator app").await;
    tab.assert_at("/account/security/totp").await;
    tab.assert_no_problems();
}
