//! The OAuth/OIDC provider, driven by the `openidconnect` crate as a real relying party.

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use openidconnect::core::{CoreClient, CoreJsonWebKeySet};
use openidconnect::{
    ClientId, ClientSecret, IssuerUrl, JsonWebKeySetUrl, OAuth2TokenResponse, Scope, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, machine_client};

backend_tests!(
    discovery_and_jwks_describe_the_provider,
    client_credentials_gives_a_verifiable_access_token,
    client_secret_post_works_and_bad_clients_get_the_rfc_error,
    malformed_requests_get_the_rfc_error_never_a_500,
    clients_created_rotated_and_deleted_from_the_cli_take_effect_at_once,
    after_a_key_rotation_old_tokens_still_verify,
    a_token_signed_with_a_key_made_elsewhere_is_checked_after_reading_the_keys,
    es256_and_eddsa_keys_can_be_chosen,
);

fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Gets a token with the openidconnect crate (client_secret_basic).
async fn client_credentials_token(app: &TestApp, id: &str, secret: &str, scope: &str) -> String {
    let client = CoreClient::new(
        ClientId::new(id.into()),
        IssuerUrl::new(app.url.clone()).expect("issuer"),
        CoreJsonWebKeySet::new(vec![]),
    )
    .set_client_secret(ClientSecret::new(secret.into()))
    .set_token_uri(TokenUrl::new(app.at("/oauth/token")).expect("token url"));
    let response = client
        .exchange_client_credentials()
        .add_scope(Scope::new(scope.into()))
        .request_async(&http())
        .await
        .expect("client_credentials succeeds");
    assert_eq!(response.token_type().as_ref(), "bearer");
    response.access_token().secret().clone()
}

/// Verifies a JWT against the published JWKS, as a resource server would.
async fn verify_with_jwks(app: &TestApp, token: &str) -> (jsonwebtoken::Header, Value) {
    let jwks: JwkSet = app.get("/oauth/jwks").await.json().await.expect("jwks");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).expect("usable jwk");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[app.url.as_str()]);
    validation.set_audience(&[app.url.as_str()]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("signature and claims verify");
    (data.header, data.claims)
}

async fn post_token(
    app: &TestApp,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = app
        .client
        .post(app.at("/oauth/token"))
        .form(form)
        .send()
        .await
        .expect("POST");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn discovery_and_jwks_describe_the_provider(app: TestApp) {
    let response = app.get("/.well-known/openid-configuration").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.expect("json");
    assert_eq!(doc["issuer"], app.url.as_str());
    assert_eq!(doc["token_endpoint"], app.at("/oauth/token"));
    assert_eq!(doc["jwks_uri"], app.at("/oauth/jwks"));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(doc["authorization_endpoint"], app.at("/oauth/authorize"));
    assert_eq!(doc["userinfo_endpoint"], app.at("/oauth/userinfo"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));

    let jwks_response = app.get("/oauth/jwks").await;
    assert!(
        jwks_response.headers()["cache-control"]
            .to_str()
            .unwrap_or_default()
            .contains("max-age")
    );
    // The openidconnect crate fetches and parses it.
    let url = JsonWebKeySetUrl::new(app.at("/oauth/jwks")).expect("url");
    let jwks = CoreJsonWebKeySet::fetch_async(&url, &http())
        .await
        .expect("JWKS parses");
    assert_eq!(jwks.keys().len(), 1);
    let raw: Value = jwks_response.json().await.expect("json");
    let key = &raw["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "no private parts");
}

async fn client_credentials_gives_a_verifiable_access_token(app: TestApp) {
    let (id, secret) = machine_client(&app, "invoices:read invoices:write").await;
    let token = client_credentials_token(&app, &id, &secret, "invoices:read").await;
    let (header, claims) = verify_with_jwks(&app, &token).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 header");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "invoices:read");
    assert_eq!(
        claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
        900
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "admin"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
    let (_, _, body) = post_token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(body["error"], "invalid_scope", "user scopes need a user");
}

async fn client_secret_post_works_and_bad_clients_get_the_rfc_error(app: TestApp) {
    let (id, secret) = machine_client(&app, "reports").await;
    let (status, headers, body) = post_token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "reports");
    assert_eq!(headers["cache-control"], "no-store");

    // Wrong secret with Basic: 401 and a Basic challenge.
    let wrong = app
        .client
        .post(app.at("/oauth/token"))
        .basic_auth(&id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .starts_with("Basic")
    );
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");

    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "no-such-client"),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    // A client made for people's sign-in may not use client_credentials.
    let out = app
        .run_cli(&[
            "client",
            "create",
            "--name",
            "Web app",
            "--redirect-uri",
            "https://app.example.com/cb",
        ])
        .await;
    let web_id = out[0]["client_id"].as_str().expect("id");
    let web_secret = out[0]["client_secret"].as_str().expect("secret");
    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", web_id),
            ("client_secret", web_secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );

    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", "password"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
}

async fn malformed_requests_get_the_rfc_error_never_a_500(app: TestApp) {
    let (id, secret) = machine_client(&app, "reports").await;
    let (status, _, body) =
        post_token(&app, &[("client_id", &id), ("client_secret", &secret)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    let json = app
        .client
        .post(app.at("/oauth/token"))
        .json(&serde_json::json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );

    let repeated = app
        .client
        .post(app.at("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&grant_type=client_credentials&client_id={id}&client_secret={secret}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        repeated.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );

    let huge = "a".repeat(200 * 1024);
    let (status, _, body) = post_token(
        &app,
        &[("grant_type", "client_credentials"), ("scope", &huge)],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "invalid_request");

    let garbage = app
        .client
        .post(app.at("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic !!!not-base64")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("POST");
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        garbage.json::<Value>().await.expect("json")["error"],
        "invalid_client"
    );
}

async fn clients_created_rotated_and_deleted_from_the_cli_take_effect_at_once(app: TestApp) {
    let (id, secret) = machine_client(&app, "reports").await;
    client_credentials_token(&app, &id, &secret, "reports").await;

    let listed = app.run_cli(&["client", "list"]).await;
    assert!(
        listed
            .iter()
            .any(|c| c["client_id"] == id.as_str() && c["name"] == "Billing worker")
    );
    assert!(
        listed.iter().all(|c| c.get("client_secret").is_none()),
        "secrets are never listed"
    );

    let rotated = app.run_cli(&["client", "rotate-secret", &id]).await;
    // Running servers reuse a looked-up client for up to 5 seconds.
    app.clock.advance(6);
    let new_secret = rotated[0]["client_secret"].as_str().expect("new secret");
    let form = |s: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", id.clone()),
            ("client_secret", s.to_string()),
        ]
    };
    let old = app
        .client
        .post(app.at("/oauth/token"))
        .form(&form(&secret))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old secret stops working"
    );
    let new = app
        .client
        .post(app.at("/oauth/token"))
        .form(&form(new_secret))
        .send()
        .await
        .expect("POST");
    assert_eq!(new.status(), StatusCode::OK);

    let output = app
        .command()
        .args(["client", "delete", &id])
        .output()
        .await
        .expect("run");
    assert!(output.status.success());
    app.clock.advance(6);
    let gone = app
        .client
        .post(app.at("/oauth/token"))
        .form(&form(new_secret))
        .send()
        .await
        .expect("POST");
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);

    // Bad input to the CLI is refused with a reason.
    let bad = app
        .command()
        .args([
            "client",
            "create",
            "--name",
            "X",
            "--redirect-uri",
            "http://app.example.com/cb",
        ])
        .output()
        .await
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must use https"));
}

async fn after_a_key_rotation_old_tokens_still_verify(app: TestApp) {
    let (id, secret) = machine_client(&app, "reports").await;
    let old_token = client_credentials_token(&app, &id, &secret, "reports").await;
    let old_kid = jsonwebtoken::decode_header(&old_token).expect("header").kid;

    let too_soon = app
        .command()
        .args(["keys", "rotate", "--delay", "2s"])
        .output()
        .await
        .expect("run");
    assert!(
        !too_soon.status.success(),
        "a key must reach every node first"
    );
    assert!(String::from_utf8_lossy(&too_soon.stderr).contains("at least 10s"));

    let rotated = app.run_cli(&["keys", "rotate", "--delay", "10s"]).await;
    let new_kid = rotated[0]["kid"].as_str().expect("kid").to_string();
    // The running server publishes the new key (at once through the change bus; SQLite, with
    // no bus, within its 5 s read of the keys), then signs with it once it is active.
    let mut published = 0;
    for _ in 0..80 {
        let jwks: Value = app.get("/oauth/jwks").await.json().await.expect("json");
        published = jwks["keys"].as_array().map_or(0, Vec::len);
        if published == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(published, 2, "the running server publishes the new key");
    app.clock.advance(11);

    let new_token = client_credentials_token(&app, &id, &secret, "reports").await;
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .expect("header")
            .kid
            .as_deref(),
        Some(new_kid.as_str())
    );
    assert_ne!(old_kid.as_deref(), Some(new_kid.as_str()));
    let jwks: Value = app.get("/oauth/jwks").await.json().await.expect("json");
    assert_eq!(
        jwks["keys"].as_array().map(Vec::len),
        Some(2),
        "old and new keys are published"
    );
    verify_with_jwks(&app, &old_token).await;
    verify_with_jwks(&app, &new_token).await;
}

/// Another node (here: another store on the same database, with no bus) made a key and signed
/// with it before this server read it: the unknown `kid` makes the server read the keys.
async fn a_token_signed_with_a_key_made_elsewhere_is_checked_after_reading_the_keys(app: TestApp) {
    use portcullis::tokens::{Keys, SigningAlg, TokenService, keys};
    let (id, secret) = machine_client(&app, "reports").await;
    let config = app.config();
    let elsewhere = portcullis::store::Store::connect(&config.database, 2)
        .await
        .expect("a second connection");
    let now = app.clock.now();
    let events = portcullis::events::Events::from_config(&config, app.clock.clone());
    let kid = keys::create_key(
        &elsewhere,
        &events,
        &config.secret_key,
        SigningAlg::Rs256,
        now,
        now,
    )
    .await
    .expect("a new key");
    let their_keys = Keys::default();
    their_keys
        .reload(&elsewhere, &config.secret_key)
        .await
        .expect("read keys");
    let their_node = TokenService::new(
        &config,
        elsewhere,
        their_keys,
        app.clock.clone(),
        portcullis::ops::metrics::Metrics::off(),
    );
    let client = their_node.client(&id).await.expect("q").expect("client");
    let token = their_node
        .client_token(&client, "reports", &[])
        .expect("token")
        .access_token;
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.kid.as_deref(), Some(kid.as_str()));

    let published = |jwks: Value| {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == kid.as_str())
    };
    let before: Value = app.get("/oauth/jwks").await.json().await.expect("json");
    assert!(
        !published(before),
        "this server has not read the new key yet"
    );
    let answer = introspect(&app, &id, &secret, &token).await;
    assert_eq!(answer["active"], true, "{answer}");
    let after: Value = app.get("/oauth/jwks").await.json().await.expect("json");
    assert!(published(after), "it read the keys for the unknown kid");

    // Made-up kids are refused (and cost at most one read of the keys a second).
    let forged = format!(
        "{}.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"alg":"RS256","typ":"at+jwt","kid":"made-up"}"#
        ),
        token.split_once('.').map_or("", |(_, rest)| rest)
    );
    let answer = introspect(&app, &id, &secret, &forged).await;
    assert_eq!(answer["active"], false, "{answer}");
}

async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    app.client
        .post(app.at("/oauth/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("POST introspect")
        .json()
        .await
        .expect("json")
}

async fn es256_and_eddsa_keys_can_be_chosen(mut app: TestApp) {
    let (id, secret) = machine_client(&app, "reports").await;
    for alg in ["ES256", "EdDSA"] {
        app.restart_with(|raw| raw.signing_alg = alg.into()).await;
        let token = client_credentials_token(&app, &id, &secret, "reports").await;
        let (header, claims) = verify_with_jwks(&app, &token).await;
        assert_eq!(format!("{:?}", header.alg), alg);
        assert_eq!(claims["sub"], id.as_str());
    }
}
