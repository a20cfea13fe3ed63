//! The rules of the token service as a relying app meets them: consent for every app, codes
//! that cannot be redeemed twice even at once, tokens that end with their consent and their
//! family, refreshes that narrow without ending the grant, RFC 8707 resource indicators, and
//! the authorization request's own rules (one value per parameter, PKCE characters,
//! redirect_uri for OpenID requests, safe redirect schemes).

use std::sync::Arc;

use openidconnect::{AuthorizationCode, OAuth2TokenResponse, RefreshToken, TokenResponse};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Barrier;

use crate::helpers::{TestApp, hidden_value, location, signed_up};
use crate::oidc_flow::{
    REDIRECT, Rp, allow, browse, callback, code_tokens, exchange_code, http, relying_party, start,
    token_call,
};

const PHOTOS_API: &str = "https://photos.example.com/api";
const BILLING_API: &str = "https://billing.example.com/api";

backend_tests!(
    an_app_asking_for_no_scope_still_needs_consent,
    racing_redemptions_of_one_code_leave_none_of_its_tokens_active,
    taking_consent_back_ends_the_apps_access_tokens,
    a_reused_refresh_token_ends_the_access_tokens_of_its_family,
    a_narrower_refresh_keeps_the_grant,
    a_logout_hint_must_be_an_id_token,
    the_authorization_request_follows_its_parameter_rules,
    dangerous_redirect_schemes_are_refused_when_a_client_is_registered,
    tokens_for_two_resources_each_name_only_their_own,
    client_credentials_can_ask_for_one_resource,
);

fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

async fn introspect(app: &TestApp, rp: &Rp, token: &str) -> Value {
    app.client
        .post(app.at("/oauth/introspect"))
        .basic_auth(&rp.id, rp.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json")
}

/// The refresh grant for `rp`, with a narrower `scope` when given.
async fn refresh_as(
    app: &TestApp,
    rp: &Rp,
    token: &str,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let secret = rp.secret.clone().expect("a confidential client");
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token_call(app, &rp.id, &secret, &form).await
}

async fn userinfo_status(app: &TestApp, access: &str) -> StatusCode {
    app.client
        .get(app.at("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("GET")
        .status()
}

/// The authorize path for `rp` with these raw query parameters (and the client's id).
fn authorize_path(rp: &Rp, params: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("client_id", &rp.id);
    for (name, value) in params {
        query.append_pair(name, value);
    }
    format!("/oauth/authorize?{}", query.finish())
}

async fn an_app_asking_for_no_scope_still_needs_consent(app: TestApp) {
    signed_up(&app).await;
    let rp = relying_party(&app, &[]).await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let base = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
    ];
    let mut silent = base.to_vec();
    silent.push(("prompt", "none"));
    let answer = app.get(&authorize_path(&rp, &silent)).await;
    let params = callback(&answer);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("consent_required"),
        "no code without consent, even for an empty scope: {params:?}"
    );
    let asked = app.get(&authorize_path(&rp, &base)).await;
    assert_eq!(asked.status(), StatusCode::OK);
    let html = asked.text().await.expect("page");
    assert!(
        html.contains("Know that you have an account here"),
        "{html}"
    );
    assert!(html.contains("value=\"allow\""));
}

async fn racing_redemptions_of_one_code_leave_none_of_its_tokens_active(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let secret = rp.secret.clone().expect("secret");
    for round in 0..8 {
        let started = start(&app, &rp, &["openid", "offline_access"]);
        let params = callback(&browse(&app, &started.path, &email).await);
        let code = params["code"].clone();
        let verifier = started.verifier.secret().to_string();
        let barrier = Arc::new(Barrier::new(4));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (barrier, client, url) =
                (barrier.clone(), app.fresh_client(), app.at("/oauth/token"));
            let (id, secret, code, verifier) = (
                rp.id.clone(),
                secret.clone(),
                code.clone(),
                verifier.clone(),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let response = client
                    .post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", code.as_str()),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", verifier.as_str()),
                    ])
                    .send()
                    .await
                    .expect("POST");
                (
                    response.status(),
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (status, body) = task.await.expect("task");
            if status == StatusCode::OK {
                winners.push(body);
            } else {
                assert_eq!(body["error"], "invalid_grant", "round {round}: {body}");
            }
        }
        assert!(winners.len() <= 1, "round {round}: one code, one exchange");
        // RFC 6749 §4.1.2: the code was presented more than once, so whatever it gave ends.
        for tokens in winners {
            let access = tokens["access_token"].as_str().expect("access");
            let refresh = tokens["refresh_token"].as_str().expect("refresh");
            assert_eq!(introspect(&app, &rp, access).await["active"], false);
            assert_eq!(introspect(&app, &rp, refresh).await["active"], false);
            let (status, _) = refresh_as(&app, &rp, refresh, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "round {round}");
        }
    }
}

async fn taking_consent_back_ends_the_apps_access_tokens(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &[]).await;
    // No offline_access: no refresh token, so only the consent holds this token up.
    let started = start(&app, &rp, &["email"]);
    let consent = browse(&app, &started.path, &email).await;
    let params = callback(&allow(&app, consent, "allow").await);
    let (_, tokens) = exchange_code(&app, &rp, &params["code"], &started.verifier).await;
    let access = tokens["access_token"].as_str().expect("access").to_string();
    assert_eq!(introspect(&app, &rp, &access).await["active"], true);
    assert_eq!(userinfo_status(&app, &access).await, StatusCode::OK);

    let account = app.page("/account").await;
    let csrf = hidden_value(&account, "csrf_token").expect("csrf");
    app.post_form(
        "/account/apps/revoke",
        &[("csrf_token", &csrf), ("client_id", &rp.id)],
    )
    .await;
    assert_eq!(introspect(&app, &rp, &access).await["active"], false);
    assert_eq!(
        userinfo_status(&app, &access).await,
        StatusCode::UNAUTHORIZED
    );

    // Allowing the app again gives new tokens; the old one stays ended.
    let again = start(&app, &rp, &["email"]);
    let consent = browse(&app, &again.path, &email).await;
    let params = callback(&allow(&app, consent, "allow").await);
    let (status, _) = exchange_code(&app, &rp, &params["code"], &again.verifier).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspect(&app, &rp, &access).await["active"], false);
}

async fn a_reused_refresh_token_ends_the_access_tokens_of_its_family(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let (first, _) = code_tokens(&app, &rp, &email, &["openid", "offline_access"]).await;
    let first_refresh = first["refresh_token"].as_str().expect("refresh");
    let (status, second) = refresh_as(&app, &rp, first_refresh, None).await;
    assert_eq!(status, StatusCode::OK);
    let first_access = first["access_token"].as_str().expect("access");
    let second_access = second["access_token"].as_str().expect("access");
    assert_eq!(introspect(&app, &rp, second_access).await["active"], true);

    let (status, body) = refresh_as(&app, &rp, first_refresh, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    for access in [first_access, second_access] {
        assert_eq!(introspect(&app, &rp, access).await["active"], false);
        assert_eq!(
            userinfo_status(&app, access).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

async fn a_narrower_refresh_keeps_the_grant(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let (tokens, _) = code_tokens(&app, &rp, &email, &["email", "offline_access"]).await;
    let (status, narrow) = refresh_as(
        &app,
        &rp,
        tokens["refresh_token"].as_str().expect("refresh"),
        Some("openid"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{narrow}");
    assert_eq!(narrow["scope"], "openid");
    assert_eq!(
        claims_of(narrow["access_token"].as_str().expect("at"))["scope"],
        "openid"
    );
    // RFC 6749 §6: the new refresh token carries the whole grant, not the narrowed scope.
    let next = narrow["refresh_token"]
        .as_str()
        .expect("the grant goes on: a new refresh token");
    let (status, full) = refresh_as(&app, &rp, next, None).await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert_eq!(full["scope"], "openid email offline_access");
    let (status, wider) = refresh_as(
        &app,
        &rp,
        full["refresh_token"].as_str().expect("refresh"),
        Some("openid profile"),
    )
    .await;
    assert_eq!(
        (status, wider["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
}

async fn a_logout_hint_must_be_an_id_token(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let (tokens, _) = code_tokens(&app, &rp, &email, &["openid"]).await;
    let access = tokens["access_token"].as_str().expect("access");
    let refused = app
        .get(&format!("/oauth/logout?id_token_hint={access}"))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::OK,
        "an access token signs no one out"
    );
    let id_token = tokens["id_token"].as_str().expect("id token");
    let done = app
        .get(&format!("/oauth/logout?id_token_hint={id_token}"))
        .await;
    assert_eq!(location(&done), "/");
    assert_eq!(app.get("/account").await.status(), StatusCode::SEE_OTHER);
}

async fn the_authorization_request_follows_its_parameter_rules(app: TestApp) {
    signed_up(&app).await;
    let rp = relying_party(&app, &["--skip-consent"]).await;
    let good = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let request = |extra: &[(&'static str, &'static str)]| {
        let mut params = vec![
            ("response_type", "code"),
            ("code_challenge_method", "S256"),
            ("state", "s1"),
        ];
        params.extend_from_slice(extra);
        authorize_path(&rp, &params)
    };
    // RFC 7636 §4.2: 43 characters, but not all of base64url.
    let plus = good.replacen('E', "+", 1);
    let bad_challenge = app
        .get(&format!(
            "{}&code_challenge={}",
            request(&[("redirect_uri", REDIRECT), ("scope", "openid")]),
            plus.replace('+', "%2B")
        ))
        .await;
    assert_eq!(
        callback(&bad_challenge).get("error").map(String::as_str),
        Some("invalid_request")
    );
    // RFC 6749 §3.1: a parameter sent twice is refused, not guessed.
    let twice = app
        .get(&format!(
            "{}&scope=email",
            request(&[
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                ("code_challenge", good)
            ])
        ))
        .await;
    let params = callback(&twice);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert!(params["error_description"].contains("scope"));
    // A repeated client_id or redirect_uri cannot be answered at any address: a page.
    let two_returns = app
        .get(&format!(
            "{}&redirect_uri={}",
            request(&[("redirect_uri", REDIRECT), ("code_challenge", good)]),
            "https%3A%2F%2Fevil.example%2Fcb"
        ))
        .await;
    assert_eq!(two_returns.status(), StatusCode::BAD_REQUEST);
    assert!(two_returns.headers().get("location").is_none());
    // OIDC Core §3.1.2.1: an OpenID request names its redirect_uri, even with one registered.
    let no_return = app
        .get(&request(&[("scope", "openid"), ("code_challenge", good)]))
        .await;
    assert_eq!(no_return.status(), StatusCode::BAD_REQUEST);
    assert!(no_return.headers().get("location").is_none());
    assert!(
        no_return
            .text()
            .await
            .unwrap_or_default()
            .contains("redirect_uri is missing")
    );
    // A plain OAuth request may still leave it out (RFC 6749 §3.1.2.3).
    let plain = app
        .get(&request(&[("scope", "email"), ("code_challenge", good)]))
        .await;
    assert!(callback(&plain).contains_key("code"));
}

async fn dangerous_redirect_schemes_are_refused_when_a_client_is_registered(app: TestApp) {
    for uri in [
        "javascript:alert(document.domain)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
    ] {
        let out = app
            .command()
            .args(["client", "create", "--name", "Bad", "--redirect-uri", uri])
            .output()
            .await
            .expect("run portcullis");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{uri} was accepted");
        assert!(stderr.contains("cannot be a return address"), "{stderr}");
    }
    crate::admin::admin(&app).await;
    let form = app.page("/admin/clients/new").await;
    let csrf = hidden_value(&form, "csrf_token").expect("csrf");
    let answer = app
        .post_form(
            "/admin/clients",
            &[
                ("csrf_token", &csrf),
                ("name", "Bad"),
                ("redirect_uris", "javascript:alert(1)"),
                ("grant_authorization_code", "on"),
                ("scopes", "openid"),
                ("access_token_ttl", "900"),
                ("refresh_token_ttl", "86400"),
            ],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text().await.unwrap_or_default();
    assert!(html.contains("cannot be a return address"), "{html}");

    // The same form gives a client its resources (RFC 8707), checked like redirect URIs.
    for (resources, accepted) in [
        ("photos.example.com/api", false),
        (
            "https://photos.example.com/api\nhttps://billing.example.com/api",
            true,
        ),
    ] {
        let answer = app
            .post_form(
                "/admin/clients",
                &[
                    ("csrf_token", &csrf),
                    ("name", "Photo Album"),
                    ("redirect_uris", REDIRECT),
                    ("grant_authorization_code", "on"),
                    ("scopes", "openid"),
                    ("resources", resources),
                    ("access_token_ttl", "900"),
                    ("refresh_token_ttl", "86400"),
                ],
            )
            .await;
        let expected = if accepted {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(answer.status(), expected, "{resources}");
    }
    let clients = app.store.list_clients().await.expect("clients");
    let saved = clients
        .iter()
        .find(|c| c.name == "Photo Album")
        .expect("the client with resources");
    assert_eq!(
        saved.resources,
        "https://photos.example.com/api https://billing.example.com/api"
    );
}

async fn tokens_for_two_resources_each_name_only_their_own(app: TestApp) {
    let email = signed_up(&app).await;
    let rp = relying_party(
        &app,
        &[
            "--skip-consent",
            "--resource",
            PHOTOS_API,
            "--resource",
            BILLING_API,
        ],
    )
    .await;
    let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = rp
        .client
        .authorize_url(
            openidconnect::core::CoreAuthenticationFlow::AuthorizationCode,
            openidconnect::CsrfToken::new_random,
            openidconnect::Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .add_scope(openidconnect::Scope::new("offline_access".into()))
        .add_extra_param("resource", PHOTOS_API)
        .add_extra_param("resource", BILLING_API)
        .url();
    let path = url.as_str().strip_prefix(app.url.as_str()).expect("ours");
    let params = callback(&browse(&app, path, &email).await);
    let tokens = rp
        .client
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .add_extra_param("resource", PHOTOS_API)
        .request_async(&http())
        .await
        .expect("code exchange for one resource");
    let id_token = tokens.id_token().expect("an ID token still");
    id_token
        .claims(&rp.client.id_token_verifier(), &nonce)
        .expect("the ID token is for the app, whatever the resource");
    let photos = claims_of(tokens.access_token().secret());
    assert_eq!(photos["aud"], PHOTOS_API);
    let introspected = introspect(&app, &rp, tokens.access_token().secret()).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["aud"], PHOTOS_API);
    assert_eq!(
        userinfo_status(&app, tokens.access_token().secret()).await,
        StatusCode::UNAUTHORIZED,
        "a token for the photos API is not for this server's userinfo"
    );

    let refresh = tokens.refresh_token().expect("refresh token").clone();
    let billing = rp
        .client
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .add_extra_param("resource", BILLING_API)
        .request_async(&http())
        .await
        .expect("refresh for the other resource");
    assert_eq!(
        claims_of(billing.access_token().secret())["aud"],
        BILLING_API
    );

    let both = rp
        .client
        .exchange_refresh_token(billing.refresh_token().expect("rotated"))
        .expect("token endpoint")
        .request_async(&http())
        .await
        .expect("refresh without a resource");
    assert_eq!(
        claims_of(both.access_token().secret())["aud"],
        serde_json::json!([PHOTOS_API, BILLING_API]),
        "without a resource, every granted one"
    );

    let not_granted = rp
        .client
        .exchange_refresh_token(&RefreshToken::new(
            both.refresh_token().expect("rotated").secret().clone(),
        ))
        .expect("token endpoint")
        .add_extra_param("resource", "https://elsewhere.example.com/api")
        .request_async(&http())
        .await;
    let Err(openidconnect::RequestTokenError::ServerResponse(error)) = not_granted else {
        panic!("a resource never granted is refused: {not_granted:?}");
    };
    assert_eq!(error.error().as_ref(), "invalid_target");

    // At authorization, a resource the client may not ask for goes back to the app.
    let unknown = app
        .get(&format!(
            "{}&resource={}",
            start(&app, &rp, &[]).path,
            "https%3A%2F%2Felsewhere.example.com%2Fapi"
        ))
        .await;
    assert_eq!(
        callback(&unknown).get("error").map(String::as_str),
        Some("invalid_target")
    );
}

async fn client_credentials_can_ask_for_one_resource(app: TestApp) {
    let out = app
        .run_cli(&[
            "client",
            "create",
            "--name",
            "Reports",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "reports",
            "--resource",
            BILLING_API,
        ])
        .await;
    let id = out[0]["client_id"].as_str().expect("id");
    let secret = out[0]["client_secret"].as_str().expect("secret");
    let (status, body) = token_call(
        &app,
        id,
        secret,
        &[
            ("grant_type", "client_credentials"),
            ("resource", BILLING_API),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().expect("at"))["aud"],
        BILLING_API
    );
    let (status, body) =
        token_call(&app, id, secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        claims_of(body["access_token"].as_str().expect("at"))["aud"],
        app.url.as_str(),
        "without a resource, today's audience"
    );
    let (status, body) = token_call(
        &app,
        id,
        secret,
        &[
            ("grant_type", "client_credentials"),
            ("resource", PHOTOS_API),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
}
