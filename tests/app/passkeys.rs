//! Passkeys through the JSON API and the pages' endpoints, with a real software authenticator
//! (`webauthn-authenticator-rs`'s soft passkey: ECDSA P-256 keys, real attestation and
//! assertion signatures, a real counter) standing where a phone or a security key stands.
//! The browser tests (`browser::passkeys`) do the same in Chromium with its virtual
//! authenticator.

use reqwest::StatusCode;
use serde_json::{Value, json};
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::api::{
    Answer, Tokens, assert_error, bearer_post, login_answer, post, signed_in, whoami,
};
use crate::helpers::{PASSWORD, TestApp, hidden_value, location};

backend_tests!(
    a_passkey_added_through_the_api_signs_in_alone_and_as_the_second_step,
    an_assertion_made_for_another_origin_is_refused,
    a_ceremony_finishes_once_when_the_same_answer_arrives_in_parallel,
    the_pages_offer_passkeys_only_where_they_can_work,
    the_security_page_renames_and_removes_a_passkey_after_a_recent_sign_in,
);

/// A person's authenticator. The soft passkey keeps its keys by credential id and cannot keep
/// them on the device (resident keys): for a sign-in without an email, this stands in for
/// that part, naming its credential and returning the user handle it was made with, as a
/// phone or security key does by itself.
pub struct Device {
    key: SoftPasskey,
    origin: Url,
    credential_id: Option<String>,
    user_handle: Option<String>,
}

impl Device {
    pub fn at(origin: &str) -> Self {
        Self {
            // The soft passkey has no fingerprint reader: it claims user verification, as a
            // phone does after the person unlocked it.
            key: SoftPasskey::new(true),
            origin: Url::parse(origin).expect("origin"),
            credential_id: None,
            user_handle: None,
        }
    }

    /// Answers a registration begin (`{ceremony, publicKey}`) with a new credential.
    pub fn create(&mut self, begin: &Value) -> Value {
        let mut options = begin["publicKey"].clone();
        assert_eq!(
            options["authenticatorSelection"]["residentKey"], "required",
            "a passkey must be discoverable: {options}"
        );
        assert_eq!(
            options["authenticatorSelection"]["userVerification"],
            "required"
        );
        options["authenticatorSelection"]["requireResidentKey"] = json!(false);
        self.user_handle = options["user"]["id"].as_str().map(str::to_string);
        let options: CreationChallengeResponse =
            serde_json::from_value(json!({ "publicKey": options })).expect("creation options");
        let credential = self
            .key
            .do_registration(self.origin.clone(), options)
            .expect("the soft passkey makes a credential");
        let credential = serde_json::to_value(&credential).expect("credential JSON");
        self.credential_id = credential["id"].as_str().map(str::to_string);
        credential
    }

    /// Answers a sign-in begin with an assertion of this device's credential, as a browser
    /// would for our origin.
    pub fn sign(&mut self, begin: &Value) -> Value {
        self.sign_for(begin, None)
    }

    /// The same from a client that does not check origins (a home-made or compromised one),
    /// for `origin`.
    pub fn sign_unchecked(&mut self, begin: &Value, origin: &str) -> Value {
        self.sign_for(begin, Some(Url::parse(origin).expect("origin")))
    }

    fn sign_for(&mut self, begin: &Value, unchecked_origin: Option<Url>) -> Value {
        let mut options = begin["publicKey"].clone();
        let discoverable = options["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty);
        let own = self
            .credential_id
            .clone()
            .expect("a credential to sign with");
        if discoverable {
            options["allowCredentials"] = json!([{ "type": "public-key", "id": own }]);
        }
        let options: RequestChallengeResponse =
            serde_json::from_value(json!({ "publicKey": options })).expect("request options");
        let assertion = match unchecked_origin {
            None => self.key.do_authentication(self.origin.clone(), options),
            Some(origin) => AuthenticatorBackend::perform_auth(
                &mut self.key,
                origin,
                options.public_key,
                60_000,
            ),
        }
        .expect("the soft passkey signs");
        let mut assertion = serde_json::to_value(&assertion).expect("assertion JSON");
        if discoverable {
            assertion["response"]["userHandle"] = json!(self.user_handle);
        }
        assertion
    }
}

/// Adds a passkey to the account of `access` through the API; the recovery codes it answered.
pub async fn add_passkey(app: &TestApp, device: &mut Device, access: &str, name: &str) -> Value {
    let begin = bearer_post(
        app,
        "/passkeys/register/begin",
        access,
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(begin.status, StatusCode::OK, "{}", begin.text);
    let credential = device.create(&begin.body);
    let finish = bearer_post(
        app,
        "/passkeys/register/finish",
        access,
        json!({ "ceremony": begin.str("ceremony"), "name": name, "credential": credential }),
    )
    .await;
    assert_eq!(finish.status, StatusCode::OK, "{}", finish.text);
    assert_eq!(finish.body["name"], name);
    finish.body
}

async fn passkey_sign_in(app: &TestApp, device: &mut Device, mfa_token: Option<&str>) -> Answer {
    let begin = post(
        app,
        "/passkeys/login/begin",
        json!({ "mfa_token": mfa_token }),
    )
    .await;
    assert_eq!(begin.status, StatusCode::OK, "{}", begin.text);
    let assertion = device.sign(&begin.body);
    post(
        app,
        "/passkeys/login/finish",
        json!({ "ceremony": begin.str("ceremony"), "credential": assertion, "mfa_token": mfa_token }),
    )
    .await
}

async fn a_passkey_added_through_the_api_signs_in_alone_and_as_the_second_step(mut app: TestApp) {
    app.on_localhost().await;
    let (email, id, tokens) = signed_in(&app).await;
    let mut device = Device::at(&app.url);

    let wrong = bearer_post(
        &app,
        "/passkeys/register/begin",
        &tokens.access,
        json!({ "password": "not it" }),
    )
    .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_password");

    let added = add_passkey(&app, &mut device, &tokens.access, "Ada's phone").await;
    let codes = added["recovery_codes"].as_array().expect("recovery codes");
    assert_eq!(
        codes.len(),
        10,
        "the first factor comes with recovery codes"
    );
    assert!(
        app.last_mail_to(&email)
            .await
            .contains("A passkey was added to your account"),
        "the owner is told"
    );

    // Alone: no email, no password.
    let alone = passkey_sign_in(&app, &mut device, None).await;
    let tokens = Tokens::from(&alone);
    let me = whoami(&app, &tokens.access).await;
    assert_eq!(me.body["id"], id.as_str(), "{}", me.text);

    // After the password, the account now has a second step, and the passkey passes it.
    let first = login_answer(&app, &email, PASSWORD).await;
    assert_eq!(first.body["mfa_required"], true, "{}", first.text);
    let methods: Vec<&str> = first.body["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(methods.contains(&"passkey"), "{methods:?}");
    let mfa_token = first.str("mfa_token");
    let second = passkey_sign_in(&app, &mut device, Some(&mfa_token)).await;
    Tokens::from(&second);
    // The mfa_token completed one sign-in.
    let again = post(
        &app,
        "/passkeys/login/begin",
        json!({ "mfa_token": mfa_token }),
    )
    .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_mfa_token");

    // Another account's passkey cannot pass this account's second step.
    let (other_email, _, other_tokens) = signed_in(&app).await;
    let mut other_device = Device::at(&app.url);
    add_passkey(&app, &mut other_device, &other_tokens.access, "Other").await;
    let first = login_answer(&app, &email, PASSWORD).await;
    let begin = post(
        &app,
        "/passkeys/login/begin",
        json!({ "mfa_token": first.str("mfa_token") }),
    )
    .await;
    let mut forged = begin.body.clone();
    forged["publicKey"]["allowCredentials"] = json!([]);
    let assertion = other_device.sign(&forged);
    let refused = post(
        &app,
        "/passkeys/login/finish",
        json!({ "ceremony": begin.str("ceremony"), "credential": assertion, "mfa_token": first.str("mfa_token") }),
    )
    .await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_passkey");
    assert!(!other_email.is_empty());

    let begin = post(&app, "/passkeys/login/begin", json!({})).await;
    let garbage = post(
        &app,
        "/passkeys/login/finish",
        json!({ "ceremony": begin.str("ceremony"), "credential": { "id": 1 } }),
    )
    .await;
    assert_error(
        &garbage,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

async fn an_assertion_made_for_another_origin_is_refused(mut app: TestApp) {
    app.on_localhost().await;
    let (_, id, tokens) = signed_in(&app).await;
    let mut device = Device::at(&app.url);
    add_passkey(&app, &mut device, &tokens.access, "Laptop").await;

    // A client that does not check origins signed our challenge for a look-alike site.
    let begin = post(&app, "/passkeys/login/begin", json!({})).await;
    let port = app.addr.port();
    let assertion = device.sign_unchecked(
        &begin.body,
        &format!("http://login-example.localhost:{port}"),
    );
    let answer = post(
        &app,
        "/passkeys/login/finish",
        json!({ "ceremony": begin.str("ceremony"), "credential": assertion }),
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_passkey");
    let filter = portcullis::store::AuditFilter {
        user_id: Some(id),
        event: Some("passkey_failed".into()),
        ..Default::default()
    };
    let logged = app.store.audit_events(&filter, 5).await.expect("audit");
    assert!(
        logged.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("origin does not match"))),
        "refused for its origin: {logged:?}"
    );
    let answer = passkey_sign_in(&app, &mut device, None).await;
    Tokens::from(&answer);
}

async fn a_ceremony_finishes_once_when_the_same_answer_arrives_in_parallel(mut app: TestApp) {
    app.on_localhost().await;
    let (_, _, tokens) = signed_in(&app).await;
    let mut device = Device::at(&app.url);
    add_passkey(&app, &mut device, &tokens.access, "Key").await;

    let begin = post(&app, "/passkeys/login/begin", json!({})).await;
    let body = json!({ "ceremony": begin.str("ceremony"), "credential": device.sign(&begin.body) });
    let answers = futures::future::join_all(
        (0..12).map(|_| post(&app, "/passkeys/login/finish", body.clone())),
    )
    .await;
    let signed_in = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert_eq!(signed_in, 1, "one sign-in from one ceremony");
    for answer in answers.iter().filter(|a| a.status != StatusCode::OK) {
        assert_error(answer, StatusCode::BAD_REQUEST, "invalid_ceremony");
    }

    // The handle is sealed with the server key and opens only for its own purpose: a made-up
    // one, and a registration's handle sent to the sign-in, are refused.
    let begin = post(&app, "/passkeys/login/begin", json!({})).await;
    let assertion = device.sign(&begin.body);
    let registration = bearer_post(
        &app,
        "/passkeys/register/begin",
        &tokens.access,
        json!({ "password": PASSWORD }),
    )
    .await;
    for handle in [
        "bm90IGEgaGFuZGxlIGF0IGFsbCwganVzdCBzb21lIGJ5dGVz".to_string(),
        registration.str("ceremony"),
    ] {
        let answer = post(
            &app,
            "/passkeys/login/finish",
            json!({ "ceremony": handle, "credential": assertion }),
        )
        .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_ceremony");
    }
    let answer = post(
        &app,
        "/passkeys/login/finish",
        json!({ "ceremony": begin.str("ceremony"), "credential": assertion }),
    )
    .await;
    Tokens::from(&answer);
}

async fn the_pages_offer_passkeys_only_where_they_can_work(mut app: TestApp) {
    // On an IP address (as every other test runs), passkeys are off: nothing is offered.
    let login = app.page("/login").await;
    assert!(!login.contains("passkeys.js"), "no script without passkeys");
    assert!(!login.contains("Sign in with a passkey"));
    let answer = post(&app, "/passkeys/login/begin", json!({})).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "passkeys_off");

    app.on_localhost().await;
    let login = app.page("/login").await;
    assert!(login.contains("<script src=\"/static/passkeys.js\" defer></script>"));
    assert!(login.contains("Sign in with a passkey"));
    assert!(login.contains("autocomplete=\"username webauthn\""));
    let script = app.get("/static/passkeys.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/javascript"))
    );

    // The login page's options: a discoverable request with user verification.
    let csrf = hidden_value(&login, "csrf_token").expect("csrf");
    let options = app
        .post_form("/login/passkey/options", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(options.status(), StatusCode::OK);
    let options: Value = options.json().await.expect("JSON");
    assert!(options["ceremony"].is_string());
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(options["publicKey"]["rpId"], "localhost");

    // A made-up answer gets the sign-in page back with a message, not an error page.
    let refused = app
        .post_form(
            "/login/passkey",
            &[
                ("csrf_token", &csrf),
                ("ceremony", options["ceremony"].as_str().unwrap_or_default()),
                ("credential", "{\"not\": \"webauthn\"}"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .text()
            .await
            .unwrap_or_default()
            .contains("That passkey could not be checked")
    );
}

async fn the_security_page_renames_and_removes_a_passkey_after_a_recent_sign_in(mut app: TestApp) {
    app.on_localhost().await;
    let email = crate::helpers::signed_up(&app).await;
    let answer = login_answer(&app, &email, PASSWORD).await;
    let tokens = Tokens::from(&answer);
    let mut device = Device::at(&app.url);
    add_passkey(&app, &mut device, &tokens.access, "Old name").await;

    let page = app.page("/account/security").await;
    assert!(page.contains("Old name"), "the passkey is listed");
    let id = page
        .split("/account/security/passkeys/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a passkey id in the page")
        .to_string();
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");

    let renamed = app
        .post_form(
            &format!("/account/security/passkeys/{id}/rename"),
            &[("csrf_token", &csrf), ("name", "  Work laptop  ")],
        )
        .await;
    assert_eq!(location(&renamed), "/account/security");
    let page = app.page("/account/security").await;
    assert!(page.contains("Work laptop") && !page.contains("Old name"));
    assert!(
        app.last_mail_to(&email)
            .await
            .contains("A passkey of your account was renamed")
    );

    // Sixteen minutes later the session alone is not enough: confirm first.
    app.clock.advance(16 * 60);
    let stopped = app
        .post_form(
            &format!("/account/security/passkeys/{id}/remove"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(stopped.status(), StatusCode::FORBIDDEN);
    assert!(app.page("/account/security").await.contains("Work laptop"));
    let confirmed = app
        .post_form(
            "/account/confirm",
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("next", "/account/security"),
            ],
        )
        .await;
    assert_eq!(location(&confirmed), "/account/security");
    let removed = app
        .post_form(
            &format!("/account/security/passkeys/{id}/remove"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(location(&removed), "/account/security");
    let page = app.page("/account/security").await;
    assert!(!page.contains("id=\"passkeys\""), "no passkey listed");
    assert!(page.contains("“Work laptop” was removed"));
    assert!(
        app.last_mail_to(&email)
            .await
            .contains("A passkey was removed from your account")
    );
    // It no longer signs in, and the account is back to the password alone.
    let answer = passkey_sign_in(&app, &mut device, None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_passkey");
    let answer = login_answer(&app, &email, PASSWORD).await;
    Tokens::from(&answer);
}
