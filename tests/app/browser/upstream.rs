//! "Sign in with Google" in a real browser, against a second Portcullis that plays Google on
//! another host (127.0.0.2), so the browser keeps each site's cookies apart as it would for two
//! real sites. The relying app's sign-in runs through it: the longest redirect chains a person
//! meets (app → B → A → B → app), each begun by a form post on A or B.

use super::relying_app::{RelyingApp, person_with_email};
use super::{Browser, Tab};
use crate::helpers::{PASSWORD, TestApp};
use crate::upstream::{upstream_person, with_google};

backend_tests!(an_existing_account_is_linked_through_google_and_then_serves_a_relying_app,);

/// At A's sign-in page: signs in there with the Google account's password.
async fn sign_in_at_google(tab: &Tab, a: &TestApp, email: &str) {
    let url = tab.url().await;
    assert!(
        url.as_str().starts_with(&format!("{}/login", a.url)),
        "at the provider's sign-in page: {url}"
    );
    tab.fill("email", email).await;
    tab.fill("password", PASSWORD).await;
    tab.press("Sign in").await;
}

async fn an_existing_account_is_linked_through_google_and_then_serves_a_relying_app(b: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;
    // The same address already has an account at B, with a password.
    assert_eq!(person_with_email(&b, &email).await, email);
    let rp = RelyingApp::register(&b, &[]).await;

    let tab = browser.window().await;
    let request = rp.request(None);
    tab.open(&request.url).await;
    tab.assert_at("/login").await;
    tab.press("Sign in with Google").await;
    sign_in_at_google(&tab, &a, &email).await;
    tab.assert_reads("Allow Portcullis B to use your account?")
        .await;
    tab.press("Allow").await;

    tab.assert_at("/auth/oauth/google/link").await;
    tab.assert_reads("Link your Google account").await;
    tab.assert_reads("already exists").await;
    tab.fill("password", PASSWORD).await;
    tab.press("Link and sign in").await;
    tab.assert_reads("Allow Photo Album to use your account?")
        .await;
    tab.press("Allow").await;
    assert_eq!(rp.redeem(&tab, request).await.0, email);
    tab.assert_no_problems();

    // Another browser: both sites remember the consent, so one press of "Sign in" at A runs the
    // whole chain A → B's callback → B's authorize → the app.
    let other = browser.window().await;
    let request = rp.request(None);
    other.open(&request.url).await;
    other.press("Sign in with Google").await;
    sign_in_at_google(&other, &a, &email).await;
    assert_eq!(rp.redeem(&other, request).await.0, email);
    other.assert_no_problems();
    let user = b
        .store
        .find_user_by_email(&email)
        .await
        .expect("query")
        .expect("the account at B");
    let links = b.store.identities_of(&user.id).await.expect("links");
    assert_eq!(links.len(), 1, "linked once");
}
