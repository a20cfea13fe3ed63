//! Passkeys in a real browser: Chromium's virtual authenticator (DevTools `WebAuthn` domain,
//! CTAP 2.1 with resident keys and user verification) stands where a phone or a security
//! key stands, and our script runs the ceremonies under the pages' CSP. The server's public
//! URL is `http://localhost:<port>`, the one plain-http origin browsers allow WebAuthn on.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chromiumoxide::cdp::browser_protocol::web_authn::{
    AddCredentialParams, AddVirtualAuthenticatorParams, AuthenticatorId, AuthenticatorProtocol,
    AuthenticatorTransport, Credential, Ctap2Version, EnableParams, GetCredentialsParams,
    VirtualAuthenticatorOptions,
};

use super::relying_app::{RelyingApp, person, sign_in_here};
use super::{Browser, Tab};
use crate::helpers::{TestApp, make_admin};

backend_tests!(
    a_passkey_made_in_the_browser_signs_in_alone_and_as_the_second_step_in_an_app_and_is_removed,
    a_copied_passkey_and_a_wrong_origin_are_refused,
    an_admin_confirms_with_a_passkey_and_removes_a_persons_passkey,
);

/// A virtual authenticator in one window: a platform authenticator with a fingerprint reader
/// that always recognises the person.
struct Authenticator {
    id: AuthenticatorId,
}

impl Authenticator {
    async fn add(tab: &Tab) -> Self {
        let page = tab.devtools();
        page.execute(EnableParams::default())
            .await
            .expect("WebAuthn.enable");
        let options = VirtualAuthenticatorOptions::builder()
            .protocol(AuthenticatorProtocol::Ctap2)
            .ctap2_version(Ctap2Version::Ctap21)
            .transport(AuthenticatorTransport::Internal)
            .has_resident_key(true)
            .has_user_verification(true)
            .is_user_verified(true)
            .automatic_presence_simulation(true)
            .build()
            .expect("authenticator options");
        let added = page
            .execute(AddVirtualAuthenticatorParams::new(options))
            .await
            .expect("WebAuthn.addVirtualAuthenticator");
        Self {
            id: added.result.authenticator_id.clone(),
        }
    }

    async fn credentials(&self, tab: &Tab) -> Vec<Credential> {
        tab.devtools()
            .execute(GetCredentialsParams::new(self.id.clone()))
            .await
            .expect("WebAuthn.getCredentials")
            .result
            .credentials
            .clone()
    }

    async fn put(&self, tab: &Tab, credential: Credential) {
        tab.devtools()
            .execute(AddCredentialParams::new(self.id.clone(), credential))
            .await
            .expect("WebAuthn.addCredential");
    }
}

/// The `amr` claim of a raw ID token (already verified by the app's OpenID client).
fn amr_of(id_token: &str) -> Vec<String> {
    let payload = id_token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON");
    claims["amr"]
        .as_array()
        .expect("an amr claim")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

async fn sign_out(tab: &Tab, app: &TestApp) {
    tab.open(&app.at("/account")).await;
    tab.press("Sign out").await;
    tab.assert_reads("You have signed out.").await;
}

/// Signs in with the password and adds a passkey named `name` on the security page.
async fn enrol(tab: &Tab, app: &TestApp, email: &str, name: &str) {
    tab.open(&app.at("/login")).await;
    sign_in_here(tab, email).await;
    tab.open(&app.at("/account/security")).await;
    tab.fill("name", name).await;
    tab.press("Add a passkey").await;
    tab.assert_at("/account/security/passkeys/new").await;
    tab.assert_reads("Add a passkey").await;
    tab.press("Create the passkey").await;
    // The first factor of the account comes with recovery codes.
    tab.assert_reads("this is the only time we show them").await;
    tab.press("I saved my codes").await;
    tab.assert_at("/account/security").await;
    let listed = tab.texts("#passkeys strong").await;
    assert_eq!(listed, vec![name.to_string()], "the passkey is listed");
}

async fn a_passkey_made_in_the_browser_signs_in_alone_and_as_the_second_step_in_an_app_and_is_removed(
    mut app: TestApp,
) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    app.on_localhost().await;
    let email = person(&app).await;
    let tab = browser.window().await;
    tab.without_passkey_autofill().await;
    let authenticator = Authenticator::add(&tab).await;
    enrol(&tab, &app, &email, "Test laptop").await;
    let made = authenticator.credentials(&tab).await;
    assert_eq!(made.len(), 1);
    assert!(made[0].is_resident_credential, "a discoverable credential");
    assert!(
        app.last_mail_to(&email)
            .await
            .contains("A passkey was added to your account")
    );
    sign_out(&tab, &app).await;

    // Alone: no email, no password.
    tab.open(&app.at("/login")).await;
    tab.press("Sign in with a passkey").await;
    tab.assert_at("/account").await;
    tab.assert_reads(&email).await;
    sign_out(&tab, &app).await;

    // Alone inside an app's sign-in: the ID token says a device-bound key and the person
    // verified on it.
    let rp = RelyingApp::register(&app, &["--skip-consent"]).await;
    let request = rp.request(None);
    tab.open(&request.url).await;
    tab.assert_at("/login").await;
    tab.press("Sign in with a passkey").await;
    let (signed_in_as, id_token) = rp.redeem(&tab, request).await;
    assert_eq!(signed_in_as, email);
    assert_eq!(amr_of(&id_token), ["hwk", "user", "mfa"]);
    sign_out(&tab, &app).await;

    // As the second step after the password, inside the app's sign-in.
    let request = rp.request(None);
    tab.open(&request.url).await;
    sign_in_here(&tab, &email).await;
    tab.assert_at("/login/verify").await;
    tab.assert_reads("Use a passkey of this account").await;
    tab.press("Use your passkey").await;
    let (_, id_token) = rp.redeem(&tab, request).await;
    assert_eq!(amr_of(&id_token), ["pwd", "hwk", "user", "mfa"]);

    // Removed from the security page (the sign-in is recent: no confirmation asked).
    tab.open(&app.at("/account/security")).await;
    tab.disclose("Rename or remove").await;
    tab.press("Remove “Test laptop”").await;
    tab.assert_reads("“Test laptop” was removed").await;
    assert_eq!(tab.count("#passkeys").await, 0);
    sign_out(&tab, &app).await;

    // The device still holds it, and it no longer signs in.
    tab.open(&app.at("/login")).await;
    tab.press("Sign in with a passkey").await;
    tab.assert_at("/login/passkey").await;
    tab.assert_reads("That passkey is not registered for this account.")
        .await;
    tab.assert_no_problems();
}

async fn a_copied_passkey_and_a_wrong_origin_are_refused(mut app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    app.on_localhost().await;
    let email = person(&app).await;
    let tab = browser.window().await;
    let authenticator = Authenticator::add(&tab).await;
    enrol(&tab, &app, &email, "Original").await;
    sign_out(&tab, &app).await;
    // The email field's autofill offers the passkey (the virtual authenticator picks it at
    // once, as a person would pick it from the list).
    tab.open(&app.at("/login")).await;
    tab.wait_until_at("/account").await;
    tab.assert_reads(&email).await;
    tab.assert_no_problems();

    // Someone copied the key out of the device before its last use: their copy's counter is
    // behind the one the server saw (WebAuthn §6.1.1).
    let mut copied = authenticator
        .credentials(&tab)
        .await
        .pop()
        .expect("the credential");
    assert!(copied.sign_count >= 1, "the original counted its use");
    copied.sign_count = 0;
    let thief = browser.window().await;
    thief.without_passkey_autofill().await;
    let theirs = Authenticator::add(&thief).await;
    theirs.put(&thief, copied).await;
    thief.open(&app.at("/login")).await;
    thief.press("Sign in with a passkey").await;
    thief.assert_at("/login/passkey").await;
    thief.assert_reads("it may have been copied").await;
    assert!(
        app.last_mail_to(&email)
            .await
            .contains("copy of one of your passkeys was refused"),
        "the owner is told"
    );

    // The sign-in page at another address of the same server (its IP address): the browser
    // will not use a passkey of `localhost` there, and nobody is signed in.
    let elsewhere = browser.window().await;
    elsewhere.without_passkey_autofill().await;
    let other = Authenticator::add(&elsewhere).await;
    other
        .put(&elsewhere, authenticator.credentials(&tab).await.remove(0))
        .await;
    let port = app.addr.port();
    elsewhere
        .open(&format!("http://127.0.0.1:{port}/login"))
        .await;
    elsewhere.press_in_place("Sign in with a passkey").await;
    elsewhere
        .wait_to_read("Passkeys cannot be used at this address")
        .await;
    elsewhere
        .open(&format!("http://127.0.0.1:{port}/account"))
        .await;
    elsewhere.assert_at("/login").await;
}

async fn an_admin_confirms_with_a_passkey_and_removes_a_persons_passkey(mut app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    app.on_localhost().await;
    // A person with a passkey on their phone (added through the API).
    let (their_email, their_id, tokens) = crate::api::signed_in(&app).await;
    let mut phone = crate::passkeys::Device::at(&app.url);
    crate::passkeys::add_passkey(&app, &mut phone, &tokens.access, "Phone").await;

    let admin = person(&app).await;
    make_admin(&app, &admin).await;
    let tab = browser.window().await;
    tab.without_passkey_autofill().await;
    Authenticator::add(&tab).await;
    // The panel asks admins for a second factor: the passkey is one.
    enrol(&tab, &app, &admin, "Admin laptop").await;

    app.clock.advance(16 * 60);
    tab.open(&app.at(&format!("/admin/users/{their_id}"))).await;
    assert_eq!(tab.texts("#passkeys strong").await, ["Phone"]);
    tab.press("Remove").await;
    tab.assert_reads("Confirm it is you").await;
    tab.press("Confirm with a passkey").await;
    tab.assert_at(&format!("/admin/users/{their_id}")).await;
    tab.assert_reads("Thanks. Now repeat what you were doing.")
        .await;
    tab.press("Remove").await;
    tab.assert_reads("The passkey “Phone” no longer signs")
        .await;
    assert_eq!(tab.count("#passkeys").await, 0);
    assert!(
        app.last_mail_to(&their_email)
            .await
            .contains("A passkey was removed from your account")
    );
    tab.assert_no_problems();
}
