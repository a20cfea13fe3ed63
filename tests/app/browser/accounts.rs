//! A person's own account in a real browser: sign-up, sign-out, sign-in, a wrong password, a
//! reset by mail, signing out another browser, an admin disabling someone, and an admin sending
//! a failed webhook delivery again.

use reqwest::StatusCode;

use super::relying_app::{person, sign_in_here};
use super::{Browser, Tab};
use crate::helpers::{PASSWORD, TestApp, signed_up, unique_email};
use crate::two_factor::{code_at, enrol_totp};

backend_tests!(
    a_person_signs_up_signs_out_and_signs_in_again,
    a_forgotten_password_is_reset_from_the_mailed_link,
    a_person_signs_out_another_browser_from_their_account_page,
    an_admin_finds_and_disables_a_person_whose_browser_is_then_signed_out,
    an_admin_sends_a_failed_webhook_delivery_again_from_the_webhooks_page,
);

/// Opens the sign-in page and signs in with `password`.
async fn sign_in(tab: &Tab, app: &TestApp, email: &str, password: &str) {
    tab.open(&app.at("/login")).await;
    tab.fill("email", email).await;
    tab.fill("password", password).await;
    tab.press("Sign in").await;
}

async fn a_person_signs_up_signs_out_and_signs_in_again(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let tab = browser.window().await;
    let email = unique_email();

    tab.open(&app.at("/signup")).await;
    tab.fill("email", &email).await;
    tab.fill("display_name", "Ada Lovelace").await;
    tab.fill("password", PASSWORD).await;
    tab.press("Create account").await;
    tab.assert_at("/account").await;
    tab.assert_reads("Welcome! Your account is ready.").await;
    tab.assert_reads(&email).await;

    tab.press("Sign out").await;
    tab.assert_at("/").await;
    tab.assert_reads("You have signed out.").await;
    tab.open(&app.at("/account")).await;
    tab.assert_at("/login").await;

    sign_in(&tab, &app, &email, "not-my-password-1").await;
    tab.assert_at("/login").await;
    tab.assert_reads("Wrong email or password.").await;

    tab.fill("password", PASSWORD).await;
    tab.press("Sign in").await;
    tab.assert_at("/account").await;
    tab.assert_reads("Ada Lovelace").await;
    tab.assert_no_problems();

    // Browsers that ask for /favicon.ico without reading the page get an icon too.
    let icon = app.get("/favicon.ico").await;
    assert_eq!(icon.status(), StatusCode::OK);
    assert_eq!(icon.headers()["content-type"], "image/x-icon");
}

async fn a_forgotten_password_is_reset_from_the_mailed_link(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let email = person(&app).await;
    let tab = browser.window().await;
    tab.open(&app.at("/login")).await;
    tab.press("Forgot password?").await;
    tab.assert_at("/password/forgot").await;
    tab.fill("email", &email).await;
    tab.press("Send the link").await;
    tab.assert_reads("If an account exists").await;

    let link = app.link_in(&app.last_mail_to(&email).await, "/password/reset");
    tab.open(&app.at(&link)).await;
    tab.assert_reads("Choose a new password").await;
    let new_password = "violet-harbour-lantern-7";
    tab.fill("password", new_password).await;
    tab.press("Change password").await;
    tab.assert_at("/login").await;

    sign_in(&tab, &app, &email, PASSWORD).await;
    tab.assert_reads("Wrong email or password.").await;
    sign_in(&tab, &app, &email, new_password).await;
    tab.assert_at("/account").await;
    tab.assert_no_problems();
}

async fn a_person_signs_out_another_browser_from_their_account_page(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let email = person(&app).await;
    let laptop = browser.window().await;
    let phone = browser.window().await;
    sign_in(&laptop, &app, &email, PASSWORD).await;
    sign_in(&phone, &app, &email, PASSWORD).await;
    phone.assert_at("/account").await;

    laptop.open(&app.at("/account")).await;
    laptop.assert_reads("this browser").await;
    laptop.press_in("//ul[@id='sessions']", "Sign out").await;
    laptop.assert_at("/account").await;

    phone.open(&app.at("/account")).await;
    phone.assert_at("/login").await;
    laptop.open(&app.at("/account")).await;
    laptop.assert_at("/account").await;
    laptop.assert_no_problems();
    phone.assert_no_problems();
}

async fn an_admin_finds_and_disables_a_person_whose_browser_is_then_signed_out(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    // The admin has an authenticator app (set up over HTTP; admins need a second factor).
    let admin_email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    crate::helpers::make_admin(&app, &admin_email).await;
    let email = person(&app).await;

    let theirs = browser.window().await;
    sign_in(&theirs, &app, &email, PASSWORD).await;
    theirs.assert_at("/account").await;

    let admins = browser.window().await;
    admins.open(&app.at("/admin")).await;
    sign_in_here(&admins, &admin_email).await;
    admins.assert_at("/login/verify").await;
    admins.fill("code", &code_at(&totp, app.clock.now())).await;
    admins.press("Continue").await;
    // The overview first: its charts are drawn on the server, no script needed.
    admins.assert_at("/admin").await;
    admins
        .assert_reads("Sign-ins per hour, last 24 hours")
        .await;
    admins.press("Users").await;
    admins.assert_at("/admin/users").await;
    admins.fill("q", &email).await;
    admins.press("Search").await;
    admins.press(&email).await;
    admins.assert_reads(&email).await;
    admins.press("Disable").await;
    admins.assert_reads("disabled").await;

    theirs.open(&app.at("/account")).await;
    theirs.assert_at("/login").await;
    sign_in(&theirs, &app, &email, PASSWORD).await;
    theirs.assert_at("/login").await;
    theirs.assert_reads("disabled").await;
    admins.assert_no_problems();
    theirs.assert_no_problems();
}

async fn an_admin_sends_a_failed_webhook_delivery_again_from_the_webhooks_page(mut app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    // Deliveries are given up a second after their event: the first retry is the last.
    app.restart_with(|raw| {
        raw.webhook_allow_private = true;
        raw.event_max_age = std::time::Duration::from_secs(1);
    })
    .await;
    let admin_email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    crate::helpers::make_admin(&app, &admin_email).await;
    let receiver = crate::events::Receiver::start(2, std::time::Duration::ZERO).await;
    let (endpoint, _) = crate::events::add_endpoint(&app, &receiver.url, &["user.created"]).await;
    person(&app).await;
    crate::events::deliveries_until(&app.store, &endpoint, |d| {
        d.first().is_some_and(|d| d.state == "failed")
    })
    .await;

    let tab = browser.window().await;
    tab.open(&app.at("/admin")).await;
    sign_in_here(&tab, &admin_email).await;
    tab.assert_at("/login/verify").await;
    tab.fill("code", &code_at(&totp, app.clock.now())).await;
    tab.press("Continue").await;
    tab.assert_at("/admin").await;
    tab.press("Webhooks").await;
    tab.assert_at("/admin/webhooks").await;
    tab.assert_reads(&receiver.url).await;
    tab.assert_reads("answered 500").await;
    tab.press("Retry now").await;
    tab.assert_at("/admin/webhooks").await;
    tab.assert_reads("The delivery is queued").await;
    let received = receiver
        .wait_until(|r| r.iter().any(|r| r.status == 204))
        .await;
    assert_eq!(
        received.len(),
        3,
        "two refusals, then the retry from the page"
    );
    tab.assert_no_problems();
}
