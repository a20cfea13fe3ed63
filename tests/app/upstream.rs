//! "Sign in with Google" for real, without the internet: instance A plays Google (a Portcullis
//! OpenID provider with a client registered for B) and instance B has A's URL as
//! `PORTCULLIS_GOOGLE_ISSUER`. B's cookie-keeping client is the person's browser at both sites;
//! A listens on 127.0.0.2 so that the two sites keep their own cookies, as two hosts would.
//! The ID-token checks are tested against a small provider that signs bad tokens on purpose.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Form;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::tokens::jwt;
use portcullis::tokens::keys::{SigningAlg, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::helpers::{PASSWORD, TestApp, hidden_value, location, unique_email};
use crate::two_factor::{code_at, enrol_totp, submit_code};

backend_tests!(
    google_sign_in_creates_an_account_and_finds_it_again,
    an_existing_account_is_linked_only_with_its_password,
    a_relying_app_flow_passes_through_google_sign_in,
    a_second_factor_is_still_asked_after_google,
    linked_methods_are_listed_and_unlinked_only_while_another_remains,
    a_state_mismatch_changes_nothing,
    a_denied_consent_at_the_upstream_changes_nothing,
    bad_id_tokens_are_refused_and_change_nothing,
    an_unreachable_upstream_gets_a_page,
);

/// Starts A beside B, registers B at A, and restarts B with A as its Google.
pub async fn with_google(mut b: TestApp) -> (TestApp, TestApp) {
    let listener = TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let a = b.spawn_beside(listener, |_| {}).await;
    let callback = format!("{}/auth/oauth/google/callback", b.url);
    let out = a
        .run_cli(&[
            "client",
            "create",
            "--name",
            "Portcullis B",
            "--redirect-uri",
            &callback,
            "--scopes",
            "openid email profile",
        ])
        .await;
    let id = out[0]["client_id"].as_str().expect("id").to_string();
    let secret = out[0]["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let issuer = a.url.clone();
    b.restart_with(|raw| {
        raw.google_client_id = Some(id);
        raw.google_client_secret = Some(secret);
        raw.google_issuer = issuer;
    })
    .await;
    (a, b)
}

/// A person with an account at A (the "Google" account), their email verified there.
pub async fn upstream_person(a: &TestApp) -> String {
    let email = unique_email();
    assert_eq!(
        a.signup(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let user = a
        .store
        .find_user_by_email(&email)
        .await
        .expect("query")
        .expect("user at A");
    a.store
        .set_email_verified(&user.id, a.clock.now(), None)
        .await
        .expect("verify at A");
    email
}

/// The browser at A: follows the authorization request, signs in when asked, answers the
/// consent page with `decision` when it shows; returns the redirect back to B.
async fn at_upstream(
    a: &TestApp,
    b: &TestApp,
    authorize: &str,
    email: &str,
    decision: &str,
) -> String {
    let mut target = authorize.to_string();
    for _ in 0..6 {
        assert!(target.starts_with(&a.url), "still at A: {target}");
        let response = b.client.get(&target).send().await.expect("GET at A");
        if response.status() == StatusCode::OK {
            let html = response.text().await.expect("consent page");
            assert!(html.contains("Portcullis B"), "the consent page names B");
            let csrf = hidden_value(&html, "csrf_token").expect("csrf");
            let request_id = hidden_value(&html, "request_id").expect("request id");
            let answer = a
                .post_form_with(
                    &b.client,
                    "/oauth/consent",
                    &[
                        ("csrf_token", &csrf),
                        ("request_id", &request_id),
                        ("decision", decision),
                    ],
                )
                .await;
            return location(&answer);
        }
        let next = location(&response);
        if next.starts_with(&b.url) {
            return next;
        }
        if next.starts_with("/login?") {
            let url = url::Url::parse(&a.at(&next)).expect("login url");
            let after: String = url
                .query_pairs()
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let csrf = a.csrf_token_with(&b.client, "/login").await;
            let login = a
                .post_form_with(
                    &b.client,
                    "/login",
                    &[
                        ("csrf_token", &csrf),
                        ("email", email),
                        ("password", PASSWORD),
                        ("next", &after),
                    ],
                )
                .await;
            // The form post ends on a page of A that moves on to the authorize request.
            assert_eq!(login.status(), StatusCode::OK, "signed in at A");
            target = a.at(&location(&login));
            continue;
        }
        target = if next.starts_with('/') {
            a.at(&next)
        } else {
            next
        };
    }
    panic!("A never sent the browser back to B");
}

/// Presses B's button (`query` carries `?next=…`), goes through A, and returns B's answer to
/// the callback.
pub async fn google_sign_in(
    a: &TestApp,
    b: &TestApp,
    query: &str,
    email: &str,
) -> reqwest::Response {
    let start = b.get(&format!("/auth/oauth/google{query}")).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let callback = at_upstream(a, b, &location(&start), email, "allow").await;
    assert!(
        callback.contains("/auth/oauth/google/callback?"),
        "{callback}"
    );
    b.client.get(&callback).send().await.expect("callback")
}

async fn google_sign_in_creates_an_account_and_finds_it_again(b: TestApp) {
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;
    let login = b.page("/login").await;
    assert!(login.contains("href=\"/auth/oauth/google\"") && login.contains("Sign in with Google"));
    assert!(b.page("/signup").await.contains("Sign in with Google"));

    let back = google_sign_in(&a, &b, "", &email).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&back), "/account");
    let account = b.page("/account").await;
    assert!(
        account.contains(&email),
        "signed in at B as the Google account"
    );
    let user = b
        .store
        .find_user_by_email(&email)
        .await
        .expect("query")
        .expect("a new account at B");
    assert!(user.email_verified, "A said the email is verified");
    assert!(user.password_hash.is_none());
    let links = b.store.identities_of(&user.id).await.expect("links");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].provider, "google");

    // The second time the link is found: same account, no new one. A remembers the session and
    // the consent, so no page shows there.
    b.logout().await;
    assert_eq!(b.get("/account").await.status(), StatusCode::SEE_OTHER);
    let back = google_sign_in(&a, &b, "", &email).await;
    assert_eq!(location(&back), "/account");
    assert!(b.page("/account").await.contains(&email));
    assert_eq!(b.store.count_users().await.expect("count"), 1);
}

async fn an_existing_account_is_linked_only_with_its_password(b: TestApp) {
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;
    let local_password = "quiet-harbour-lantern-9";
    assert_eq!(
        b.signup(&email, local_password).await.status(),
        StatusCode::SEE_OTHER
    );
    b.logout().await;
    let user = b
        .store
        .find_user_by_email(&email)
        .await
        .expect("query")
        .expect("user");

    let back = google_sign_in(&a, &b, "", &email).await;
    assert_eq!(location(&back), "/auth/oauth/google/link");
    // Not signed in, nothing linked until the password is given.
    assert_eq!(b.get("/account").await.status(), StatusCode::SEE_OTHER);
    assert!(
        b.store
            .identities_of(&user.id)
            .await
            .expect("links")
            .is_empty()
    );
    let page = b.page("/auth/oauth/google/link").await;
    assert!(page.contains("already exists") && page.contains(&email));
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");

    let wrong = b
        .post_form(
            "/auth/oauth/google/link",
            &[("csrf_token", &csrf), ("password", "not-the-password-1")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap_or_default()
            .contains("Wrong password.")
    );
    assert!(
        b.store
            .identities_of(&user.id)
            .await
            .expect("links")
            .is_empty()
    );
    assert_eq!(b.get("/account").await.status(), StatusCode::SEE_OTHER);

    let right = b
        .post_form(
            "/auth/oauth/google/link",
            &[("csrf_token", &csrf), ("password", local_password)],
        )
        .await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&right), "/account");
    assert!(b.page("/account").await.contains(&email));
    assert_eq!(
        b.store.identities_of(&user.id).await.expect("links").len(),
        1
    );
    assert_eq!(b.store.count_users().await.expect("count"), 1);

    // From now on Google alone is enough.
    b.logout().await;
    let back = google_sign_in(&a, &b, "", &email).await;
    assert_eq!(location(&back), "/account");
}

async fn a_relying_app_flow_passes_through_google_sign_in(b: TestApp) {
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;
    let redirect = "https://app.example.com/callback";
    let rp = b
        .run_cli(&[
            "client",
            "create",
            "--name",
            "Photo Album",
            "--redirect-uri",
            redirect,
            "--skip-consent",
        ])
        .await;
    let client_id = rp[0]["client_id"].as_str().expect("id").to_string();
    let client_secret = rp[0]["client_secret"].as_str().expect("secret").to_string();
    let verifier = "a-code-verifier-that-is-long-enough-for-rfc-7636-yes";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={client_id}\
         &redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&scope=openid%20email\
         &state=rp-state&nonce=rp-nonce&code_challenge={challenge}&code_challenge_method=S256"
    );
    let first = b.get(&authorize).await;
    let login_path = location(&first);
    assert!(login_path.starts_with("/login?next="), "{login_path}");

    // The Google button on that sign-in page carries the authorization request along.
    let login = b.page(&login_path).await;
    let href = login
        .split("href=\"/auth/oauth/google")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the Google button")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    assert!(href.starts_with("?next="), "{href}");
    let back = google_sign_in(&a, &b, &href, &email).await;
    let resume = location(&back);
    assert!(
        resume.starts_with("/oauth/authorize?"),
        "back in the app's flow: {resume}"
    );

    let to_app = b.get(&resume).await;
    let target = url::Url::parse(&location(&to_app)).expect("redirect to the app");
    assert!(target.as_str().starts_with(redirect));
    let params: HashMap<String, String> = target.query_pairs().into_owned().collect();
    assert_eq!(params.get("state").map(String::as_str), Some("rp-state"));
    let code = params.get("code").expect("a code");
    let tokens: Value = b
        .fresh_client()
        .post(b.at("/oauth/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).expect("payload"))
            .expect("base64"),
    )
    .expect("claims");
    let user = b
        .store
        .find_user_by_email(&email)
        .await
        .expect("query")
        .expect("user at B");
    assert_eq!(payload["sub"], json!(user.id));
    assert_eq!(payload["email"], json!(email));
}

async fn a_second_factor_is_still_asked_after_google(b: TestApp) {
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;
    assert_eq!(
        location(&google_sign_in(&a, &b, "", &email).await),
        "/account"
    );
    let (totp, _codes) = enrol_totp(&b).await;
    b.logout().await;

    let back = google_sign_in(&a, &b, "", &email).await;
    assert_eq!(location(&back), "/login/verify");
    assert_eq!(
        b.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "not signed in before the second step"
    );
    let done = submit_code(&b, "totp", &code_at(&totp, b.clock.now())).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/account");
    assert!(b.page("/account").await.contains(&email));
}

async fn linked_methods_are_listed_and_unlinked_only_while_another_remains(b: TestApp) {
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;
    google_sign_in(&a, &b, "", &email).await;
    let user = b
        .store
        .find_user_by_email(&email)
        .await
        .expect("query")
        .expect("user");
    let subject = b.store.identities_of(&user.id).await.expect("links")[0]
        .subject
        .clone();
    let account = b.page("/account").await;
    assert!(account.contains("<strong>Google</strong>"));
    assert!(account.contains("This is your only way to sign in"));
    assert!(!account.contains("action=\"/account/sign-in-methods/unlink\""));

    // The server refuses too, whatever the page shows.
    let csrf = hidden_value(&account, "csrf_token").expect("csrf");
    let unlink = [
        ("csrf_token", csrf.as_str()),
        ("provider", "google"),
        ("subject", subject.as_str()),
    ];
    let refused = b
        .post_form("/account/sign-in-methods/unlink", &unlink)
        .await;
    assert_eq!(location(&refused), "/account");
    assert!(
        b.page("/account")
            .await
            .contains("is your only way to sign in")
    );
    assert_eq!(
        b.store.identities_of(&user.id).await.expect("links").len(),
        1
    );

    // A password set with a reset link is another way in; then Google can go.
    let token = b.csrf_token("/password/forgot").await;
    b.post_form(
        "/password/forgot",
        &[("csrf_token", &token), ("email", &email)],
    )
    .await;
    let link = b.link_in(&b.last_mail_to(&email).await, "/password/reset");
    let form = b.page(&link).await;
    let reset = b
        .post_form(
            "/password/reset",
            &[
                (
                    "csrf_token",
                    &hidden_value(&form, "csrf_token").expect("csrf"),
                ),
                ("token", &hidden_value(&form, "token").expect("token")),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(location(&reset), "/login");
    assert_eq!(
        b.login(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let account = b.page("/account").await;
    assert!(account.contains("action=\"/account/sign-in-methods/unlink\""));
    let csrf = hidden_value(&account, "csrf_token").expect("csrf");
    let unlink = [
        ("csrf_token", csrf.as_str()),
        ("provider", "google"),
        ("subject", subject.as_str()),
    ];
    let done = b
        .post_form("/account/sign-in-methods/unlink", &unlink)
        .await;
    assert_eq!(location(&done), "/account");
    assert!(
        b.store
            .identities_of(&user.id)
            .await
            .expect("links")
            .is_empty()
    );
    let account = b.page("/account").await;
    assert!(account.contains("no longer a way to sign in"));
    assert!(
        account.contains("href=\"/auth/oauth/google\""),
        "offered to link again"
    );

    // Linking again from the account page attaches Google to the signed-in person.
    let back = google_sign_in(&a, &b, "", &email).await;
    assert_eq!(location(&back), "/account");
    assert!(
        b.page("/account")
            .await
            .contains("You can now sign in with Google.")
    );
    let links = b.store.identities_of(&user.id).await.expect("links");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].subject, subject);
    assert_eq!(b.store.count_users().await.expect("count"), 1);
}

async fn a_state_mismatch_changes_nothing(b: TestApp) {
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;

    // An answer when no sign-in was started in this browser.
    let stray = b
        .get("/auth/oauth/google/callback?code=abc&state=forged")
        .await;
    assert_eq!(stray.status(), StatusCode::BAD_REQUEST);

    // A real answer from A, with its state changed on the way.
    let start = b.get("/auth/oauth/google").await;
    let callback = at_upstream(&a, &b, &location(&start), &email, "allow").await;
    let mut url = url::Url::parse(&callback).expect("callback url");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    url.query_pairs_mut().clear();
    for (k, v) in &pairs {
        let v = if k == "state" { "tampered" } else { v.as_str() };
        url.query_pairs_mut().append_pair(k, v);
    }
    let tampered = b.client.get(url.as_str()).send().await.expect("callback");
    assert_eq!(tampered.status(), StatusCode::BAD_REQUEST);
    let page = tampered.text().await.unwrap_or_default();
    assert!(page.contains("does not belong to a sign-in started in this browser"));
    // The flow was used up: the genuine answer no longer works either.
    let genuine = b.client.get(&callback).send().await.expect("callback");
    assert_eq!(genuine.status(), StatusCode::BAD_REQUEST);
    assert_eq!(b.store.count_users().await.expect("count"), 0);
    assert_eq!(b.get("/account").await.status(), StatusCode::SEE_OTHER);
}

async fn a_denied_consent_at_the_upstream_changes_nothing(b: TestApp) {
    let (a, b) = with_google(b).await;
    let email = upstream_person(&a).await;
    let start = b.get("/auth/oauth/google").await;
    let callback = at_upstream(&a, &b, &location(&start), &email, "deny").await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let answer = b.client.get(&callback).send().await.expect("callback");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(
        answer
            .text()
            .await
            .unwrap_or_default()
            .contains("Sign-in cancelled")
    );
    assert_eq!(b.store.count_users().await.expect("count"), 0);
    assert_eq!(b.get("/account").await.status(), StatusCode::SEE_OTHER);
}

/// A stand-in provider that signs the ID token the test asks for: the code is `{case}.{nonce}`.
async fn token_forging_provider() -> String {
    let listener = TcpListener::bind("127.0.0.3:0")
        .await
        .expect("bind 127.0.0.3");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let known = Arc::new(SigningKey::generate(SigningAlg::Es256, "known").expect("key"));
    let stranger = Arc::new(SigningKey::generate(SigningAlg::Es256, "stranger").expect("key"));
    let impostor = Arc::new(SigningKey::generate(SigningAlg::Es256, "known").expect("key"));
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    let jwks = json!({ "keys": [known.jwk.clone()] });
    let token_issuer = issuer.clone();
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }))
        .route(
            "/token",
            post(
                move |Form(form): Form<HashMap<String, String>>| async move {
                    let (case, nonce) = form["code"].split_once('.').expect("case.nonce");
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("time")
                        .as_secs() as i64;
                    let mut claims = json!({
                        "iss": token_issuer, "sub": "forged-1", "aud": "b-at-forger",
                        "iat": now, "exp": now + 300, "nonce": nonce,
                        "email": "forged@example.com", "email_verified": true,
                    });
                    let mut key = &known;
                    match case {
                        "wrong-audience" => claims["aud"] = json!("someone-else"),
                        "expired" => {
                            claims["iat"] = json!(now - 900);
                            claims["exp"] = json!(now - 600);
                        }
                        // A key the provider never published.
                        "unknown-key" => key = &stranger,
                        // The published key's id on another key: the signature cannot verify.
                        "bad-signature" => key = &impostor,
                        "wrong-nonce" => claims["nonce"] = json!("another-nonce"),
                        "unverified-email" => claims["email_verified"] = json!(false),
                        _ => {}
                    }
                    let id_token = jwt::sign(key, "JWT", &claims).expect("sign");
                    Json(json!({
                        "access_token": "opaque", "token_type": "Bearer", "expires_in": 300,
                        "id_token": id_token,
                    }))
                },
            ),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    issuer
}

async fn bad_id_tokens_are_refused_and_change_nothing(mut b: TestApp) {
    let issuer = token_forging_provider().await;
    b.restart_with(|raw| {
        raw.google_client_id = Some("b-at-forger".into());
        raw.google_client_secret = Some("forger-secret".into());
        raw.google_issuer = issuer.clone();
    })
    .await;
    let cases = [
        "wrong-audience",
        "expired",
        "unknown-key",
        "bad-signature",
        "wrong-nonce",
        "unverified-email",
        "good",
    ];
    for case in cases {
        let start = b.get("/auth/oauth/google").await;
        let authorize = url::Url::parse(&location(&start)).expect("authorize url");
        assert!(
            authorize
                .as_str()
                .starts_with(&format!("{issuer}/authorize"))
        );
        let params: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
        assert_eq!(params["code_challenge_method"], "S256");
        let (state, nonce) = (&params["state"], &params["nonce"]);
        let answer = b
            .get(&format!(
                "/auth/oauth/google/callback?code={case}.{nonce}&state={state}"
            ))
            .await;
        if case == "unverified-email" {
            // A verified token, but no account from an address nobody confirmed.
            assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{case}");
            let page = answer.text().await.unwrap_or_default();
            assert!(page.contains("not confirmed"), "{case}: {page}");
            assert_eq!(b.store.count_users().await.expect("count"), 0, "{case}");
        } else if case == "good" {
            // The harness itself is sound: a proper token signs the person in.
            assert_eq!(location(&answer), "/account", "{case}");
            assert_eq!(b.store.count_users().await.expect("count"), 1);
        } else {
            assert_eq!(answer.status(), StatusCode::BAD_GATEWAY, "{case}");
            let page = answer.text().await.unwrap_or_default();
            assert!(page.contains("could not be verified"), "{case}: {page}");
            assert_eq!(b.store.count_users().await.expect("count"), 0, "{case}");
        }
    }
}

async fn an_unreachable_upstream_gets_a_page(mut b: TestApp) {
    // Nothing listens on the discard port.
    b.restart_with(|raw| {
        raw.google_client_id = Some("id".into());
        raw.google_client_secret = Some("secret".into());
        raw.google_issuer = "http://127.0.0.1:9".into();
    })
    .await;
    let answer = b.get("/auth/oauth/google").await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    assert!(
        answer
            .text()
            .await
            .unwrap_or_default()
            .contains("cannot be reached")
    );
    assert_eq!(b.store.count_users().await.expect("count"), 0);
}
