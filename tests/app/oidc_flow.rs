//! The authorization code flow end to end: the `openidconnect` crate is the relying party, the
//! cookie-keeping test client is the person's browser.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, hidden_value, location, signed_up};

pub const REDIRECT: &str = "https://app.example.com/callback";

backend_tests!(
    the_code_flow_with_pkce_yields_a_verified_id_token_and_userinfo,
    consent_is_remembered_can_be_asked_again_and_denied,
    prompt_none_answers_without_showing_pages,
    bad_clients_and_redirect_uris_get_a_page_and_never_a_redirect,
    pkce_is_required_for_public_clients_and_checked,
    a_code_works_once_and_for_sixty_seconds,
    a_sign_in_with_an_authenticator_app_is_reported_in_amr,
    userinfo_refuses_inactive_tokens,
    refresh_tokens_rotate_and_a_reused_one_ends_the_family,
    revocation_and_introspection_follow_the_rfcs,
    a_reused_code_revokes_the_tokens_it_gave,
    rp_initiated_logout_ends_the_session_and_returns_to_a_registered_uri,
    consent_can_be_taken_back_and_sign_out_everywhere_ends_tokens,
    a_consent_question_expires_and_a_session_keeps_five_at_most,
);

pub fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

pub struct Rp {
    pub client: openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    pub id: String,
    pub secret: Option<String>,
}

async fn register(app: &TestApp, extra: &[&str]) -> (String, Option<String>) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "Photo Album",
        "--redirect-uri",
        REDIRECT,
    ];
    args.extend_from_slice(extra);
    let out = app.run_cli(&args).await;
    (
        out[0]["client_id"].as_str().expect("id").to_string(),
        out[0]["client_secret"].as_str().map(str::to_string),
    )
}

pub async fn relying_party(app: &TestApp, extra: &[&str]) -> Rp {
    let (id, secret) = register(app, extra).await;
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(app.url.clone()).expect("issuer"),
        &http(),
    )
    .await
    .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(id.clone()),
        secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("redirect"));
    Rp { client, id, secret }
}

pub struct Started {
    pub path: String,
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

pub fn start(app: &TestApp, rp: &Rp, scopes: &[&str]) -> Started {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new(scope.to_string()));
    }
    let (url, state, nonce) = request.url();
    let path = url
        .as_str()
        .strip_prefix(app.url.as_str())
        .expect("our authorize URL")
        .to_string();
    Started {
        path,
        state,
        nonce,
        verifier,
    }
}

/// Follows the browser through sign-in (if needed) until the authorize request answers with
/// something other than a redirect to our own pages; returns that response.
pub async fn browse(app: &TestApp, path: &str, email: &str) -> reqwest::Response {
    let mut response = app.get(path).await;
    for _ in 0..5 {
        let target = location(&response);
        if target.starts_with("/login?") {
            let next = target
                .split("next=")
                .nth(1)
                .unwrap_or_default()
                .split('&')
                .next()
                .unwrap_or_default();
            let next = percent_decode(next);
            let login = app.login_with_next(email, PASSWORD, &next).await;
            response = app.get(&location(&login)).await;
        } else {
            break;
        }
    }
    response
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub async fn allow(
    app: &TestApp,
    consent_page: reqwest::Response,
    decision: &str,
) -> reqwest::Response {
    let html = consent_page.text().await.expect("consent page");
    let csrf = hidden_value(&html, "csrf_token").expect("csrf");
    let request_id = hidden_value(&html, "request_id").expect("request id");
    app.post_form(
        "/oauth/consent",
        &[
            ("csrf_token", &csrf),
            ("request_id", &request_id),
            ("decision", decision),
        ],
    )
    .await
}

/// The query parameters of a redirect to the app.
pub fn callback(response: &reqwest::Response) -> std::collections::HashMap<String, String> {
    let target = location(response);
    assert!(
        target.starts_with(REDIRECT),
        "redirected to the app: {target}"
    );
    url::Url::parse(&target)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

async fn the_code_flow_with_pkce_yields_a_verified_id_token_and_userinfo(app: TestApp) {
    let email = signed_up(&app).await;
    app.logout().await;
    let rp = relying_party(&app, &[]).await;
    let started = start(&app, &rp, &["email", "profile", "offline_access"]);

    let consent = browse(&app, &started.path, &email).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let csp = consent.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    // The same strict policy as every page: the answer continues to the app from a page of
    // ours, so the form never has to be allowed to post elsewhere.
    assert!(csp.contains("form-action 'self';"), "{csp}");
    let html = consent.text().await.unwrap_or_default();
    assert!(html.contains("<strong>Photo Album</strong>"));
    assert!(html.contains("See your email address") && html.contains("See your name"));
    assert!(html.contains("value=\"allow\"") && html.contains("value=\"deny\""));
    let csrf = hidden_value(&html, "csrf_token").expect("csrf");
    let request_id = hidden_value(&html, "request_id").expect("id");
    let redirected = app
        .post_form(
            "/oauth/consent",
            &[
                ("csrf_token", &csrf),
                ("request_id", &request_id),
                ("decision", "allow"),
            ],
        )
        .await;
    let params = callback(&redirected);
    assert_eq!(params.get("state"), Some(started.state.secret()));
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(app.url.as_str()),
        "RFC 9207"
    );
    let code = params.get("code").expect("code").clone();

    let tokens = rp
        .client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint known")
        .set_pkce_verifier(started.verifier)
        .request_async(&http())
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &started.nonce)
        .expect("signature, iss, aud, exp and nonce verify");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(email.as_str()));
    assert_eq!(claims.email_verified(), Some(false));
    assert!(claims.auth_time().is_some());
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token.signing_key(&verifier).expect("key"),
    )
    .expect("hash");
    assert_eq!(&actual, expected_hash);
    let raw: Value = serde_json::from_slice(&base64_decode(
        id_token.to_string().split('.').nth(1).unwrap_or_default(),
    ))
    .expect("claims json");
    assert_eq!(raw["amr"], serde_json::json!(["pwd"]));
    assert_eq!(raw["aud"], rp.id.as_str());

    let info: CoreUserInfoClaims = rp
        .client
        .user_info(tokens.access_token().clone(), None)
        .expect("userinfo endpoint")
        .request_async(&http())
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some(email.as_str()));
    assert_eq!(info.subject().as_str(), claims.subject().as_str());
}

fn base64_decode(part: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_default()
}

async fn consent_is_remembered_can_be_asked_again_and_denied(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &[]).await;
    let first = start(&app, &rp, &["email"]);
    let consent = browse(&app, &first.path, &email).await;
    let params = callback(&allow(&app, consent, "allow").await);
    assert!(params.contains_key("code"));

    // Same scopes again: straight back with a code.
    let again = start(&app, &rp, &["email"]);
    assert!(callback(&app.get(&again.path).await).contains_key("code"));
    // More scopes: asked again. prompt=consent: asked again.
    let more = start(&app, &rp, &["email", "profile"]);
    assert_eq!(app.get(&more.path).await.status(), StatusCode::OK);
    let forced = start(&app, &rp, &["email"]);
    let page = app.get(&format!("{}&prompt=consent", forced.path)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let denied = callback(&allow(&app, page, "deny").await);
    assert_eq!(
        denied.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(denied.get("state"), Some(forced.state.secret()));

    // The same request as a form post (OIDC Core §3.1.2.1) works too.
    let posted = start(&app, &rp, &["email"]);
    let query = posted
        .path
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let response = app
        .client
        .post(app.at("/oauth/authorize"))
        .form(&pairs)
        .send()
        .await
        .expect("POST");
    assert!(callback(&response).contains_key("code"));

    // A first-party app never asks.
    let first_party = relying_party(&app, &["--skip-consent"]).await;
    let started = start(&app, &first_party, &["email", "profile"]);
    assert!(callback(&app.get(&started.path).await).contains_key("code"));
}

async fn prompt_none_answers_without_showing_pages(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &[]).await;
    let started = start(&app, &rp, &["email"]);
    let params = callback(&app.get(&format!("{}&prompt=none", started.path)).await);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("consent_required")
    );
    app.logout().await;
    let params = callback(&app.get(&format!("{}&prompt=none", started.path)).await);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("login_required")
    );

    // login_hint fills in the email; prompt=login signs in again even when signed in.
    let hinted = app
        .get(&format!("{}&login_hint={}", started.path, email))
        .await;
    let login_page = app.page(&location(&hinted)).await;
    assert!(login_page.contains(&format!("value=\"{email}\"")));
    app.login(&email, PASSWORD).await;
    let forced = app.get(&format!("{}&prompt=login", started.path)).await;
    assert!(
        location(&forced).starts_with("/login?next="),
        "{}",
        location(&forced)
    );
    // A link from anywhere can carry prompt=login: the person stays signed in until the new
    // sign-in succeeds, and the form shows although they are signed in.
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::OK,
        "still signed in while the fresh sign-in is pending"
    );
    let fresh_form = app.page(&location(&forced)).await;
    assert!(fresh_form.contains("name=\"password\""), "{fresh_form}");
    let next = hidden_value(&fresh_form, "next").expect("the form carries next");
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    assert!(!next.contains("prompt=login"), "no loop: {next}");
    let csrf = hidden_value(&fresh_form, "csrf_token").expect("csrf");
    let signed_in_again = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", &email),
                ("password", PASSWORD),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(location(&signed_in_again), next);
    app.logout().await;

    let unsupported = app
        .get(
            &started
                .path
                .replace("response_type=code", "response_type=token"),
        )
        .await;
    assert_eq!(
        callback(&unsupported).get("error").map(String::as_str),
        Some("unsupported_response_type")
    );
    // Echoed values have a bound; an over-long state is not sent back.
    for name in ["state", "nonce", "login_hint"] {
        let mut url = url::Url::parse(&format!("http://x{}", started.path)).expect("path");
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(&others)
            .append_pair(name, &"a".repeat(1025));
        let long = app
            .get(&format!("{}?{}", url.path(), url.query().unwrap_or("")))
            .await;
        let answer = callback(&long);
        assert_eq!(
            answer.get("error").map(String::as_str),
            Some("invalid_request"),
            "{name}"
        );
        if name == "state" {
            assert_eq!(
                answer.get("state"),
                None,
                "a state over the bound is not echoed"
            );
        }
    }

    // max_age: a sign-in older than asked for means signing in again.
    app.login(&email, PASSWORD).await;
    app.clock.advance(120);
    let aged = app.get(&format!("{}&max_age=60", started.path)).await;
    assert!(
        location(&aged).starts_with("/login?next="),
        "{}",
        location(&aged)
    );
    assert!(
        !location(&aged).contains("max_age"),
        "no loop after signing in"
    );
}

async fn bad_clients_and_redirect_uris_get_a_page_and_never_a_redirect(app: TestApp) {
    signed_up(&app).await;
    let rp = relying_party(&app, &[]).await;
    let started = start(&app, &rp, &["email"]);
    for path in [
        started
            .path
            .replace(&format!("client_id={}", rp.id), "client_id=no-such-app"),
        started
            .path
            .replace("app.example.com%2Fcallback", "evil.example%2Fcallback"),
        "/oauth/authorize?response_type=code".to_string(),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            response.headers().get("location").is_none(),
            "never redirected: {path}"
        );
        assert!(
            response
                .text()
                .await
                .unwrap_or_default()
                .contains("This sign-in link does not work")
        );
    }
}

async fn pkce_is_required_for_public_clients_and_checked(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--public", "--skip-consent"]).await;
    let started = start(&app, &rp, &["email"]);
    let without = started
        .path
        .split('&')
        .filter(|p| !p.starts_with("code_challenge"))
        .collect::<Vec<_>>()
        .join("&");
    let params = callback(&app.get(&without).await);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert!(
        params
            .get("error_description")
            .is_some_and(|d| d.contains("PKCE"))
    );

    let params = callback(&browse(&app, &started.path, &email).await);
    let code = params.get("code").expect("code").clone();
    let wrong = rp
        .client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .expect("token endpoint")
        .set_pkce_verifier(PkceCodeVerifier::new("a".repeat(43)))
        .request_async(&http())
        .await;
    assert!(format!("{wrong:?}").contains("invalid_grant"), "{wrong:?}");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", rp.id.as_str()),
    ];
    let missing = app
        .client
        .post(app.at("/oauth/token"))
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        missing.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
}

async fn a_code_works_once_and_for_sixty_seconds(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let started = start(&app, &rp, &["email"]);
    let code = callback(&browse(&app, &started.path, &email).await)
        .get("code")
        .expect("code")
        .clone();
    let http = http();
    let exchange = |code: String, verifier: String| {
        rp.client
            .exchange_code(AuthorizationCode::new(code))
            .expect("token endpoint")
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&http)
    };
    let verifier = started.verifier.secret().clone();
    assert!(exchange(code.clone(), verifier.clone()).await.is_ok());
    let reused = exchange(code, verifier).await;
    assert!(
        format!("{reused:?}").contains("invalid_grant"),
        "{reused:?}"
    );

    let later = start(&app, &rp, &["email"]);
    let code = callback(&app.get(&later.path).await)
        .get("code")
        .expect("code")
        .clone();
    app.clock.advance(61);
    let expired = exchange(code, later.verifier.secret().clone()).await;
    assert!(
        format!("{expired:?}").contains("invalid_grant"),
        "{expired:?}"
    );
}

async fn a_sign_in_with_an_authenticator_app_is_reported_in_amr(app: TestApp) {
    use totp_rs::{Algorithm, Secret, TOTP};
    let email = signed_up(&app).await;
    let csrf = app.csrf_token("/account/security").await;
    app.post_form("/account/security/totp/setup", &[("csrf_token", &csrf)])
        .await;
    let setup = app.page("/account/security/totp").await;
    let start_marker = "<p class=\"secret\" id=\"secret\">";
    let secret = setup
        .split(start_marker)
        .nth(1)
        .and_then(|s| s.split("</p>").next())
        .unwrap_or_default()
        .replace(' ', "");
    let totp = TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        Secret::Encoded(secret).to_bytes().expect("b32"),
        None,
        String::new(),
    )
    .expect("totp");
    let csrf = hidden_value(&setup, "csrf_token").expect("csrf");
    app.post_form(
        "/account/security/totp/confirm",
        &[
            ("csrf_token", &csrf),
            ("code", &totp.generate(app.clock.now() as u64)),
        ],
    )
    .await;
    app.clock.advance(30);
    app.logout().await;

    let rp = relying_party(&app, &["--skip-consent"]).await;
    let started = start(&app, &rp, &["email"]);
    let to_login = app.get(&started.path).await;
    let next = percent_decode(
        location(&to_login)
            .split("next=")
            .nth(1)
            .unwrap_or_default(),
    );
    let after_password = app.login_with_next(&email, PASSWORD, &next).await;
    assert_eq!(location(&after_password), "/login/verify");
    let page = app.page("/login/verify").await;
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");
    let code = totp.generate(app.clock.now() as u64);
    let verified = app
        .post_form(
            "/login/verify",
            &[("csrf_token", &csrf), ("method", "totp"), ("code", &code)],
        )
        .await;
    assert!(
        location(&verified).starts_with("/oauth/authorize?"),
        "back to the flow"
    );
    let params = callback(&app.get(&location(&verified)).await);
    let tokens = rp
        .client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .expect("token endpoint")
        .set_pkce_verifier(started.verifier)
        .request_async(&http())
        .await
        .expect("exchange");
    let id_token = tokens.id_token().expect("id token");
    id_token
        .claims(&rp.client.id_token_verifier(), &started.nonce)
        .expect("verifies");
    let raw: Value = serde_json::from_slice(&base64_decode(
        id_token.to_string().split('.').nth(1).unwrap_or_default(),
    ))
    .expect("json");
    assert_eq!(raw["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
}

async fn userinfo_refuses_inactive_tokens(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let started = start(&app, &rp, &["email"]);
    let params = callback(&browse(&app, &started.path, &email).await);
    let tokens = rp
        .client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .expect("token endpoint")
        .set_pkce_verifier(started.verifier)
        .request_async(&http())
        .await
        .expect("exchange");
    let access = tokens.access_token().secret().clone();
    let userinfo = |token: &str| {
        app.client
            .get(app.at("/oauth/userinfo"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        userinfo(&access).await.expect("GET").status(),
        StatusCode::OK
    );
    let none = app
        .client
        .get(app.at("/oauth/userinfo"))
        .send()
        .await
        .expect("GET");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let forged = userinfo("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
        .await
        .expect("GET");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(
        forged.headers()["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .contains("invalid_token")
    );

    // Changing the password ends every session, and the tokens with them.
    let csrf = app.csrf_token("/account/password").await;
    app.post_form(
        "/account/password",
        &[
            ("csrf_token", &csrf),
            ("current_password", PASSWORD),
            ("new_password", "violet-harbour-cable-9"),
        ],
    )
    .await;
    assert_eq!(
        userinfo(&access).await.expect("GET").status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Signs in (already signed up), runs the flow for a first-party app and returns the tokens.
pub async fn code_tokens(app: &TestApp, rp: &Rp, email: &str, scopes: &[&str]) -> (Value, String) {
    let started = start(app, rp, scopes);
    let params = callback(&browse(app, &started.path, email).await);
    let code = params.get("code").expect("code").clone();
    let (id, secret) = (
        rp.id.clone(),
        rp.secret.clone().expect("a confidential client"),
    );
    let response = app
        .client
        .post(app.at("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", started.verifier.secret().as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    (response.json().await.expect("json"), code)
}

/// Exchanges `code` (RFC 6749 §4.1.3 with the PKCE verifier) as the confidential `rp`.
pub async fn exchange_code(
    app: &TestApp,
    rp: &Rp,
    code: &str,
    verifier: &PkceCodeVerifier,
) -> (StatusCode, Value) {
    let secret = rp.secret.clone().expect("a confidential client");
    token_call(
        app,
        &rp.id,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.secret()),
        ],
    )
    .await
}

pub async fn token_call(
    app: &TestApp,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.at("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .expect("POST");
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn refresh_tokens_rotate_and_a_reused_one_ends_the_family(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let (tokens, _) = code_tokens(&app, &rp, &email, &["email", "offline_access"]).await;
    let first = tokens["refresh_token"]
        .as_str()
        .expect("offline_access gives a refresh token")
        .to_string();
    let secret = rp.secret.clone().expect("secret");

    let (status, rotated) = token_call(
        &app,
        &rp.id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let second = rotated["refresh_token"]
        .as_str()
        .expect("a new refresh token")
        .to_string();
    assert_ne!(first, second, "rotated on every use");
    assert!(rotated["access_token"].is_string());
    // OIDC Core §12.2 lets a refresh response leave the ID token out; ours does (see README).
    assert!(rotated.get("id_token").is_none(), "{rotated}");

    // The old one again: refused, and the whole family ends, including the new token.
    let (status, body) = token_call(
        &app,
        &rp.id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = token_call(
        &app,
        &rp.id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &second)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the family is revoked");

    // Without offline_access there is no refresh token.
    let (plain, _) = code_tokens(&app, &rp, &email, &["email"]).await;
    assert!(plain.get("refresh_token").is_none());
}

async fn revocation_and_introspection_follow_the_rfcs(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let (tokens, _) = code_tokens(&app, &rp, &email, &["openid", "email", "offline_access"]).await;
    let secret = rp.secret.clone().expect("secret");
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let introspect = |token: String, id: String, secret: String| {
        let client = app.client.clone();
        let url = app.at("/oauth/introspect");
        async move {
            let response = client
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("json")
        }
    };

    let info = introspect(access.clone(), rp.id.clone(), secret.clone()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "access_token");
    assert_eq!(info["client_id"], rp.id.as_str());
    assert!(info["sub"].is_string() && info["exp"].is_i64() && info["iat"].is_i64());
    assert_eq!(info["iss"], app.url.as_str());
    let info = introspect(refresh.clone(), rp.id.clone(), secret.clone()).await;
    assert_eq!(
        (info["active"].as_bool(), info["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );

    // Another client sees nothing; garbage is simply inactive; introspection needs a secret.
    let other = app
        .run_cli(&[
            "client",
            "create",
            "--name",
            "API",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "x",
        ])
        .await;
    let (other_id, other_secret) = (
        other[0]["client_id"].as_str().expect("id").to_string(),
        other[0]["client_secret"].as_str().expect("s").to_string(),
    );
    assert_eq!(
        introspect(access.clone(), other_id.clone(), other_secret.clone()).await,
        serde_json::json!({ "active": false })
    );
    assert_eq!(
        introspect("not-a-token".into(), rp.id.clone(), secret.clone()).await["active"],
        false
    );
    let anonymous = app
        .client
        .post(app.at("/oauth/introspect"))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Revoking the access token denies it at introspection and userinfo.
    let revoke = |token: String| {
        let client = app.client.clone();
        let url = app.at("/oauth/revoke");
        let (id, secret) = (rp.id.clone(), secret.clone());
        async move {
            client
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .expect("POST")
                .status()
        }
    };
    assert_eq!(revoke(access.clone()).await, StatusCode::OK);
    assert_eq!(
        introspect(access.clone(), rp.id.clone(), secret.clone()).await["active"],
        false
    );
    let userinfo = app
        .client
        .get(app.at("/oauth/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("GET");
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    // Revoking the refresh token ends its family; unknown tokens still answer 200.
    assert_eq!(revoke(refresh.clone()).await, StatusCode::OK);
    assert_eq!(
        introspect(refresh.clone(), rp.id.clone(), secret.clone()).await["active"],
        false
    );
    let (status, _) = token_call(
        &app,
        &rp.id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(revoke("unknown".into()).await, StatusCode::OK);

    // Disabling the user makes a fresh pair inactive at once.
    let (tokens, _) = code_tokens(&app, &rp, &email, &["openid", "offline_access"]).await;
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("store")
        .expect("user");
    app.store
        .set_user_disabled(&user.id, true, app.clock.now(), None)
        .await
        .expect("disable");
    for token in [&tokens["access_token"], &tokens["refresh_token"]] {
        let token = token.as_str().expect("token").to_string();
        assert_eq!(
            introspect(token, rp.id.clone(), secret.clone()).await["active"],
            false
        );
    }
}

async fn a_reused_code_revokes_the_tokens_it_gave(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let (tokens, code) = code_tokens(&app, &rp, &email, &["openid", "offline_access"]).await;
    let secret = rp.secret.clone().expect("secret");
    let (status, body) = token_call(
        &app,
        &rp.id,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"a".repeat(43)),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // The replayed code had a wrong verifier too; replay with the right one is also refused.
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let access = tokens["access_token"].as_str().expect("access");
    let (status, _) = token_call(
        &app,
        &rp.id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    let userinfo = app
        .client
        .get(app.at("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("GET");
    // Either way the code was presented twice: both tokens are now dead.
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
}

async fn rp_initiated_logout_ends_the_session_and_returns_to_a_registered_uri(app: TestApp) {
    const BYE: &str = "https://app.example.com/bye";
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent", "--post-logout-redirect-uri", BYE]).await;
    let (tokens, _) = code_tokens(&app, &rp, &email, &["openid", "email"]).await;
    let id_token = tokens["id_token"].as_str().expect("id token").to_string();
    let doc: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(doc["end_session_endpoint"], app.at("/oauth/logout"));

    // An unregistered return address: a page, no redirect, still signed in.
    let evil = app
        .get(&format!("/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"))
        .await;
    assert_eq!(evil.status(), StatusCode::BAD_REQUEST);
    assert!(evil.headers().get("location").is_none());
    assert_eq!(app.get("/account").await.status(), StatusCode::OK);

    // Without a hint the person confirms first.
    let ask = app
        .get(&format!(
            "/oauth/logout?client_id={}&post_logout_redirect_uri={}&state=s1",
            rp.id, BYE
        ))
        .await;
    assert_eq!(ask.status(), StatusCode::OK);
    let html = ask.text().await.unwrap_or_default();
    assert!(html.contains("Photo Album") && html.contains("asks to sign you out"));
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::OK,
        "not yet"
    );
    let csrf = hidden_value(&html, "csrf_token").expect("csrf");
    let done = app
        .post_form("/oauth/logout/confirm", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(location(&done), format!("{BYE}?state=s1"));
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "signed out"
    );

    // With a valid hint it happens at once.
    app.login(&email, PASSWORD).await;
    let at_once = app
        .get(&format!(
            "/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri={BYE}&state=s2"
        ))
        .await;
    assert_eq!(location(&at_once), format!("{BYE}?state=s2"));
    assert_eq!(app.get("/account").await.status(), StatusCode::SEE_OTHER);
}

async fn consent_can_be_taken_back_and_sign_out_everywhere_ends_tokens(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &[]).await;
    let started = start(&app, &rp, &["email", "offline_access"]);
    let consent = browse(&app, &started.path, &email).await;
    let params = callback(&allow(&app, consent, "allow").await);
    let secret = rp.secret.clone().expect("secret");
    let (_, tokens) = exchange_code(&app, &rp, &params["code"], &started.verifier).await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    let account = app.page("/account").await;
    assert!(account.contains("Photo Album") && account.contains("Remove access"));
    let csrf = hidden_value(&account, "csrf_token").expect("csrf");
    app.post_form(
        "/account/apps/revoke",
        &[("csrf_token", &csrf), ("client_id", &rp.id)],
    )
    .await;
    let account = app.page("/account").await;
    assert!(account.contains("The app no longer has access"));
    assert!(account.contains("No apps have access"));
    let (status, _) = token_call(
        &app,
        &rp.id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "its refresh tokens end too"
    );
    let again = start(&app, &rp, &["email"]);
    assert_eq!(
        app.get(&again.path).await.status(),
        StatusCode::OK,
        "consent is asked again"
    );

    // Sign out everywhere: this session, other sessions and every token end.
    let first_party = relying_party(&app, &["--skip-consent"]).await;
    let (tokens, _) = code_tokens(&app, &first_party, &email, &["openid", "offline_access"]).await;
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
    let csrf = app.csrf_token("/account").await;
    let done = app
        .post_form("/account/sign-out-everywhere", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(location(&done), "/");
    assert_eq!(app.get("/account").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        other
            .get(app.at("/account"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::SEE_OTHER
    );
    let userinfo = app
        .client
        .get(app.at("/oauth/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .expect("GET");
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    let fp_secret = first_party.secret.clone().expect("secret");
    let (status, _) = token_call(
        &app,
        &first_party.id,
        &fp_secret,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().unwrap_or_default(),
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Unanswered consent questions wait in the session: at most five (the oldest go first), and
/// for ten minutes; 40 authorize requests leave the session small.
async fn a_consent_question_expires_and_a_session_keeps_five_at_most(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &[]).await;
    let first = start(&app, &rp, &["email"]);
    let oldest = browse(&app, &first.path, &email).await;
    assert_eq!(oldest.status(), StatusCode::OK);
    let mut newest = None;
    for _ in 0..40 {
        let next = start(&app, &rp, &["email"]);
        let page = app.get(&format!("{}&prompt=consent", next.path)).await;
        assert_eq!(page.status(), StatusCode::OK);
        newest = Some(page);
    }
    let dropped = allow(&app, oldest, "allow").await;
    assert_eq!(dropped.status(), StatusCode::BAD_REQUEST);
    assert!(dropped.text().await.unwrap_or_default().contains("expired"));
    if let portcullis::store::Db::Sqlite(pool) = &app.store.db {
        let largest: i64 = sqlx::query_scalar("select max(length(data)) from tower_sessions")
            .fetch_one(pool)
            .await
            .expect("session size");
        assert!(largest < 16 * 1024, "the session holds {largest} bytes");
    }
    let params = callback(&allow(&app, newest.expect("a page"), "allow").await);
    assert!(params.contains_key("code"), "the newest is answered");

    let late = start(&app, &rp, &["email"]);
    let page = app.get(&format!("{}&prompt=consent", late.path)).await;
    assert_eq!(page.status(), StatusCode::OK);
    app.clock.advance(10 * 60 + 1);
    let expired = allow(&app, page, "allow").await;
    assert_eq!(
        expired.status(),
        StatusCode::BAD_REQUEST,
        "ten minutes later it has expired"
    );
}
