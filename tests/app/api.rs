//! The JSON API under `/api/v1`, driven the way a mobile or single-page app would: JSON bodies,
//! Bearer access tokens and rotating refresh tokens, with no cookies.

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use reqwest::header::{CONTENT_TYPE, HeaderMap, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{PASSWORD, TestApp, hidden_value, location, signed_up, unique_email};
use crate::two_factor::code_at;

backend_tests!(
    signing_up_creates_the_account_and_answers_201_with_its_id,
    signing_up_with_a_taken_email_in_another_case_is_a_conflict,
    invalid_signup_fields_are_named_in_a_422,
    a_body_that_is_not_json_is_refused_with_a_matching_status,
    too_many_signups_from_one_address_are_paused,
    logging_in_returns_a_bearer_token_pair_for_fifteen_minutes,
    token_lifetimes_follow_the_configuration,
    a_wrong_password_and_an_unknown_email_get_byte_identical_answers,
    a_disabled_account_cannot_log_in_and_its_tokens_stop_working,
    repeated_failed_logins_are_paused_with_retry_after,
    an_unconfirmed_email_cannot_log_in_when_confirmation_is_required,
    an_authenticator_app_is_confirmed_with_a_code_and_gives_ten_recovery_codes,
    logging_in_with_an_authenticator_needs_a_code_and_the_mfa_token_works_once,
    an_mfa_token_expires_after_five_minutes,
    a_wrong_code_is_refused_but_the_mfa_token_can_be_retried,
    five_wrong_codes_pause_the_second_step,
    a_recovery_code_completes_a_login_once,
    an_emailed_code_completes_a_login,
    email_codes_are_not_sent_to_someone_who_has_not_turned_them_on,
    whoami_describes_the_person_the_token_belongs_to,
    whoami_refuses_missing_malformed_expired_and_foreign_tokens,
    access_tokens_verify_against_the_published_keys_for_the_api_audience,
    a_refresh_token_gives_new_tokens_once_and_reuse_ends_the_family,
    logging_out_ends_the_refresh_token_and_the_presented_access_token,
    logging_out_everywhere_ends_every_token_and_browser_session,
    the_session_list_shows_app_logins_and_browsers_and_marks_the_current_one,
    ending_an_app_login_from_the_list_stops_its_tokens,
    ending_a_browser_session_from_the_list_signs_that_browser_out,
    sessions_that_are_not_ones_own_cannot_be_ended,
    an_app_login_can_be_signed_out_from_the_account_page,
    cross_origin_calls_are_allowed_only_from_configured_origins,
    the_openapi_document_lists_every_endpoint_and_each_one_answers,
);

const USER_AGENT: &str = "PortcullisTestApp/1.0";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One answer from the API: status, headers, the raw body and the body as JSON (`Null` if none).
pub(crate) struct Answer {
    pub status: StatusCode,
    headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Answer {
    async fn from(request: reqwest::RequestBuilder) -> Self {
        let response = request
            .send()
            .await
            .expect("the request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            body,
        }
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("a string `{field}` in {}", self.text))
            .to_string()
    }

    fn header(&self, name: impl reqwest::header::AsHeaderName) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// The `(status, error code)` of an error answer.
fn error_code(answer: &Answer) -> (StatusCode, String) {
    (
        answer.status,
        answer.body["error"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Asserts an error answer has the given status and code, a message, and `fields` only on 422
/// (always on `validation_failed`).
#[track_caller]
pub(crate) fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(
        error_code(answer),
        (status, code.to_string()),
        "body: {}",
        answer.text
    );
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a human message: {}",
        answer.text
    );
    let has_fields = answer.body.get("fields").is_some_and(|f| !f.is_null());
    if code == "validation_failed" {
        assert!(has_fields, "`fields` names what is wrong: {}", answer.text);
    } else if status != StatusCode::UNPROCESSABLE_ENTITY {
        assert!(!has_fields, "`fields` comes with 422 only: {}", answer.text);
    }
    assert!(
        answer
            .header(CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/json")),
        "errors are JSON"
    );
}

/// Asserts a 401 `invalid_token` with a Bearer challenge.
#[track_caller]
fn assert_invalid_token(answer: &Answer, context: &str) {
    assert_eq!(
        error_code(answer),
        (StatusCode::UNAUTHORIZED, "invalid_token".to_string()),
        "{context}: {}",
        answer.text
    );
    assert!(
        answer
            .header(WWW_AUTHENTICATE)
            .is_some_and(|c| c.starts_with("Bearer")),
        "{context}: a Bearer challenge"
    );
}

fn api(app: &TestApp, path: &str) -> String {
    app.at(&format!("/api/v1{path}"))
}

/// POST a JSON body from an app (no cookies).
pub(crate) async fn post(app: &TestApp, path: &str, body: Value) -> Answer {
    Answer::from(
        app.fresh_client()
            .post(api(app, path))
            .header("user-agent", USER_AGENT)
            .json(&body),
    )
    .await
}

/// POST a JSON body with a Bearer access token.
pub(crate) async fn bearer_post(app: &TestApp, path: &str, token: &str, body: Value) -> Answer {
    Answer::from(
        app.fresh_client()
            .post(api(app, path))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn bearer_get(app: &TestApp, path: &str, token: &str) -> Answer {
    Answer::from(app.fresh_client().get(api(app, path)).bearer_auth(token)).await
}

async fn bearer_delete(app: &TestApp, path: &str, token: &str) -> Answer {
    Answer::from(app.fresh_client().delete(api(app, path)).bearer_auth(token)).await
}

/// Signs a new account up through the API; returns its email and id.
async fn api_signup(app: &TestApp) -> (String, String) {
    let email = unique_email();
    let answer = post(
        app,
        "/signup",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "signup: {}",
        answer.text
    );
    (email, answer.str("id"))
}

pub(crate) struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    #[track_caller]
    pub fn from(answer: &Answer) -> Self {
        assert_eq!(answer.status, StatusCode::OK, "tokens: {}", answer.text);
        Self {
            access: answer.str("access_token"),
            refresh: answer.str("refresh_token"),
        }
    }
}

pub(crate) async fn login_answer(app: &TestApp, email: &str, password: &str) -> Answer {
    post(app, "/login", json!({"email": email, "password": password})).await
}

/// Logs in (no second factor) and returns the token pair.
async fn api_login(app: &TestApp, email: &str) -> Tokens {
    Tokens::from(&login_answer(app, email, PASSWORD).await)
}

/// A new account, logged in through the API: its email, id and tokens.
pub(crate) async fn signed_in(app: &TestApp) -> (String, String, Tokens) {
    let (email, id) = api_signup(app).await;
    let tokens = api_login(app, &email).await;
    (email, id, tokens)
}

pub(crate) async fn whoami(app: &TestApp, access: &str) -> Answer {
    bearer_get(app, "/whoami", access).await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Answer {
    post(
        app,
        "/token/refresh",
        json!({"refresh_token": refresh_token}),
    )
    .await
}

fn totp_from(secret: &str) -> TOTP {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .expect("the secret is base32");
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()).expect("a valid TOTP")
}

/// Sets up an authenticator app through the API; returns it and the recovery codes.
async fn enrol_totp_via_api(app: &TestApp, access: &str) -> (TOTP, Vec<String>) {
    let setup = bearer_post(app, "/2fa/setup", access, json!({"password": PASSWORD})).await;
    assert_eq!(setup.status, StatusCode::OK, "2fa setup: {}", setup.text);
    let totp = totp_from(&setup.str("secret"));
    let code = code_at(&totp, app.clock.now());
    let verified = bearer_post(app, "/2fa/verify", access, json!({"code": code})).await;
    assert_eq!(
        verified.status,
        StatusCode::OK,
        "2fa verify: {}",
        verified.text
    );
    let codes: Vec<String> = verified.body["recovery_codes"]
        .as_array()
        .expect("recovery_codes")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    // The step just used cannot be used again: move on to the next one.
    app.clock.advance(30);
    (totp, codes)
}

/// Logs in with the password of an account with a second factor; returns the mfa_token and
/// the offered methods.
async fn mfa_login(app: &TestApp, email: &str) -> (String, Vec<String>) {
    let answer = login_answer(app, email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "login: {}", answer.text);
    assert_eq!(answer.body["mfa_required"], true, "{}", answer.text);
    assert!(
        answer.body.get("access_token").is_none(),
        "no tokens before the second factor"
    );
    let methods = answer.body["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    (answer.str("mfa_token"), methods)
}

/// Completes a login with a second-factor code.
async fn complete(app: &TestApp, mfa_token: &str, code: &str, method: Option<&str>) -> Answer {
    let mut body = json!({"mfa_token": mfa_token, "code": code});
    if let Some(method) = method {
        body["method"] = json!(method);
    }
    post(app, "/2fa/verify", body).await
}

/// The sessions listed for the holder of `access`.
async fn sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let answer = bearer_get(app, "/sessions", access).await;
    assert_eq!(answer.status, StatusCode::OK, "sessions: {}", answer.text);
    answer.body["sessions"]
        .as_array()
        .expect("a sessions list")
        .clone()
}

/// The id of the API login that `access` belongs to (the one listed as `current`).
async fn current_session_id(app: &TestApp, access: &str) -> String {
    let list = sessions(app, access).await;
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "exactly one current session: {list:?}");
    current[0]["id"].as_str().expect("id").to_string()
}

/// Signs the cookie browser (`app.client`) in on the hosted pages.
async fn browser_login(app: &TestApp, email: &str) {
    let response = app.login(email, PASSWORD).await;
    assert_eq!(location(&response), "/account", "the browser signs in");
    assert_eq!(app.get("/account").await.status(), StatusCode::OK);
}

fn mailed_code(mail: &str) -> String {
    let start = mail.find("Your code: ").expect("a code in the mail") + "Your code: ".len();
    mail[start..]
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Turns email codes on through the hosted pages for the signed-in browser (the first factor).
async fn turn_on_email_codes(app: &TestApp, email: &str) {
    let csrf = app.csrf_token("/account/security").await;
    let start = app
        .post_form(
            "/account/security/email-otp/setup",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(location(&start), "/account/security/email-otp");
    let code = mailed_code(&app.last_mail_to(email).await);
    let csrf = app.csrf_token("/account/security/email-otp").await;
    let done = app
        .post_form(
            "/account/security/email-otp/confirm",
            &[("csrf_token", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK, "email codes are on");
}

/// An OAuth client_credentials access token (audience: the server, not the API).
async fn client_credentials_token(app: &TestApp) -> String {
    let (id, secret) = crate::helpers::machine_client(app, "reports").await;
    let (id, secret) = (id.as_str(), secret.as_str());
    let response = app
        .fresh_client()
        .post(app.at("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("POST /oauth/token");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn looks_like_rfc3339(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() >= 20
            && s.as_bytes()[4] == b'-'
            && s.as_bytes()[10] == b'T'
            && (s.ends_with('Z') || s[19..].contains(['+', '-']))
    })
}

// ---------------------------------------------------------------------------------------------
// Signup
// ---------------------------------------------------------------------------------------------

async fn signing_up_creates_the_account_and_answers_201_with_its_id(app: TestApp) {
    let email = unique_email();
    let answer = post(
        &app,
        "/signup",
        json!({"email": email.to_uppercase(), "password": PASSWORD, "name": "Ann Example"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("store")
        .expect("the user exists, found whatever the case");
    assert_eq!(answer.str("id"), user.id);
    assert_eq!(answer.str("email"), user.email, "the email as stored");
    assert!(user.email.eq_ignore_ascii_case(&email));
    assert_eq!(user.display_name.as_deref(), Some("Ann Example"));

    // The new account works in the API and on the hosted pages alike.
    let tokens = api_login(&app, &email).await;
    assert_eq!(
        whoami(&app, &tokens.access).await.str("name"),
        "Ann Example"
    );
    browser_login(&app, &email).await;
}

async fn signing_up_with_a_taken_email_in_another_case_is_a_conflict(app: TestApp) {
    let (email, _) = api_signup(&app).await;
    let again = post(
        &app,
        "/signup",
        json!({"email": email.to_uppercase(), "password": PASSWORD}),
    )
    .await;
    assert_error(&again, StatusCode::CONFLICT, "email_taken");
    assert_eq!(app.store.count_users().await.expect("count"), 1);
}

async fn invalid_signup_fields_are_named_in_a_422(app: TestApp) {
    let email = unique_email();
    let long_name = "n".repeat(201);
    for (body, field) in [
        (json!({"email": email, "password": "short"}), "password"),
        (
            json!({"email": email, "password": "Password123"}),
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "ann@example", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": email, "password": PASSWORD, "name": long_name}),
            "name",
        ),
        (json!({"email": email}), "password"),
        (json!({"password": PASSWORD}), "email"),
        (json!({"email": 5, "password": "x"}), "email"),
        (
            json!({"email": email, "password": PASSWORD, "name": 7}),
            "name",
        ),
    ] {
        let answer = post(&app, "/signup", body.clone()).await;
        assert_error(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(
            answer.body["fields"][field]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "fields.{field} for {body}: {}",
            answer.text
        );
        assert!(
            !answer.text.contains("Password123"),
            "the password is never echoed"
        );
    }
    assert_eq!(app.store.count_users().await.expect("count"), 0);
}

async fn a_body_that_is_not_json_is_refused_with_a_matching_status(app: TestApp) {
    let client = app.fresh_client();
    let bad_json = Answer::from(
        client
            .post(api(&app, "/signup"))
            .header(CONTENT_TYPE, "application/json")
            .body("{\"email\": \"ann@example.com\", "),
    )
    .await;
    assert_error(&bad_json, StatusCode::BAD_REQUEST, "invalid_json");

    let plain = Answer::from(
        client
            .post(api(&app, "/signup"))
            .header(CONTENT_TYPE, "text/plain")
            .body(json!({"email": unique_email(), "password": PASSWORD}).to_string()),
    )
    .await;
    assert_error(
        &plain,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let huge = json!({"email": unique_email(), "password": "p".repeat(1024 * 1024)});
    let too_large = Answer::from(client.post(api(&app, "/signup")).json(&huge)).await;
    assert_error(
        &too_large,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_eq!(app.store.count_users().await.expect("count"), 0);
}

async fn too_many_signups_from_one_address_are_paused(mut app: TestApp) {
    app.restart_with(|raw| raw.signup_max_per_ip = 2).await;
    api_signup(&app).await;
    api_signup(&app).await;
    let third = post(
        &app,
        "/signup",
        json!({"email": unique_email(), "password": PASSWORD}),
    )
    .await;
    assert_error(&third, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(
        third
            .header(RETRY_AFTER)
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|secs| secs > 0)),
        "Retry-After in seconds"
    );
    assert_eq!(app.store.count_users().await.expect("count"), 2);
}

// ---------------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------------

async fn logging_in_returns_a_bearer_token_pair_for_fifteen_minutes(app: TestApp) {
    let (email, _) = api_signup(&app).await;
    let answer = login_answer(&app, &email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 900);
    let tokens = Tokens::from(&answer);
    assert!(!tokens.access.is_empty() && !tokens.refresh.is_empty());
    assert_ne!(tokens.access, tokens.refresh);
    assert!(answer.body.get("mfa_required").is_none_or(|v| v == false));
    assert_eq!(whoami(&app, &tokens.access).await.status, StatusCode::OK);
    // Email addresses are matched whatever their case.
    api_login(&app, &email.to_uppercase()).await;
}

async fn token_lifetimes_follow_the_configuration(mut app: TestApp) {
    app.restart_with(|raw| {
        raw.api_access_token_lifetime = std::time::Duration::from_secs(120);
        raw.api_refresh_token_lifetime = std::time::Duration::from_secs(600);
    })
    .await;
    let (email, _) = api_signup(&app).await;
    let answer = login_answer(&app, &email, PASSWORD).await;
    assert_eq!(answer.body["expires_in"], 120, "{}", answer.text);
    let tokens = Tokens::from(&answer);
    app.clock.advance(121);
    assert_invalid_token(&whoami(&app, &tokens.access).await, "after 2 minutes");
    let renewed = refresh(&app, &tokens.refresh).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    let renewed = Tokens::from(&renewed);
    app.clock.advance(601);
    assert_error(
        &refresh(&app, &renewed.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
    // The sign-in shows on the account page's event list as an app sign-in.
    app.login(&email, PASSWORD).await;
    assert!(
        app.page("/account")
            .await
            .contains("Signed in to an app (API)")
    );
}

async fn a_wrong_password_and_an_unknown_email_get_byte_identical_answers(app: TestApp) {
    let (email, _) = api_signup(&app).await;
    let wrong = login_answer(&app, &email, "not-the-password-1").await;
    let unknown = login_answer(&app, &unique_email(), "not-the-password-1").await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.text, wrong.text, "nothing tells the two apart");
}

async fn a_disabled_account_cannot_log_in_and_its_tokens_stop_working(app: TestApp) {
    let (email, id, tokens) = signed_in(&app).await;
    app.store
        .set_user_disabled(&id, true, app.clock.now(), None)
        .await
        .expect("disable");
    let answer = login_answer(&app, &email, PASSWORD).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "account_disabled");
    assert_invalid_token(
        &whoami(&app, &tokens.access).await,
        "a disabled user's token",
    );
    assert_ne!(
        refresh(&app, &tokens.refresh).await.status,
        StatusCode::OK,
        "no new tokens for a disabled user"
    );
    // A wrong password still says only that the credentials are wrong.
    let wrong = login_answer(&app, &email, "not-the-password-1").await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn repeated_failed_logins_are_paused_with_retry_after(app: TestApp) {
    let (email, _) = api_signup(&app).await;
    for attempt in 1..=5 {
        let answer = login_answer(&app, &email, "not-the-password-1").await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            answer.text
        );
    }
    // Now even the right password waits.
    let paused = login_answer(&app, &email, PASSWORD).await;
    assert_error(&paused, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(
        paused.header(RETRY_AFTER).is_some_and(|s| s
            .parse::<u64>()
            .is_ok_and(|secs| secs > 0 && secs <= 15 * 60)),
        "Retry-After in seconds, at most the window: {:?}",
        paused.header(RETRY_AFTER)
    );
    app.clock.advance(15 * 60 + 1);
    api_login(&app, &email).await;
}

async fn an_unconfirmed_email_cannot_log_in_when_confirmation_is_required(mut app: TestApp) {
    let (email, id) = api_signup(&app).await;
    app.restart_with(|raw| raw.require_verified_email = true)
        .await;
    let answer = login_answer(&app, &email, PASSWORD).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "email_not_verified");
    app.store
        .set_email_verified(&id, app.clock.now(), None)
        .await
        .expect("verify");
    let tokens = api_login(&app, &email).await;
    assert_eq!(
        whoami(&app, &tokens.access).await.body["email_verified"],
        true
    );
}

// ---------------------------------------------------------------------------------------------
// Second factors
// ---------------------------------------------------------------------------------------------

async fn an_authenticator_app_is_confirmed_with_a_code_and_gives_ten_recovery_codes(app: TestApp) {
    let (_, _, tokens) = signed_in(&app).await;
    let nothing_pending = bearer_post(
        &app,
        "/2fa/verify",
        &tokens.access,
        json!({"code": "123456"}),
    )
    .await;
    assert_error(&nothing_pending, StatusCode::CONFLICT, "no_pending_setup");
    assert_invalid_token(
        &post(&app, "/2fa/setup", json!({})).await,
        "setup without a token",
    );

    // A Bearer token alone cannot add a factor: the password is asked for too.
    let no_password = bearer_post(&app, "/2fa/setup", &tokens.access, json!({})).await;
    assert_eq!(
        no_password.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        no_password.text
    );
    let wrong_password = bearer_post(
        &app,
        "/2fa/setup",
        &tokens.access,
        json!({"password": "not-the-password-9"}),
    )
    .await;
    assert_error(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_password",
    );
    let first = bearer_post(
        &app,
        "/2fa/setup",
        &tokens.access,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let secret = first.str("secret");
    assert!(
        !secret.is_empty() && !secret.contains(' '),
        "base32 without spaces: {secret}"
    );
    assert!(first.str("otpauth_url").starts_with("otpauth://totp/"));
    assert!(first.str("qr_svg").starts_with("<svg"));

    // Setting up again replaces the pending secret.
    let second = bearer_post(
        &app,
        "/2fa/setup",
        &tokens.access,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_ne!(second.str("secret"), secret);
    let old = code_at(&totp_from(&secret), app.clock.now());
    let totp = totp_from(&second.str("secret"));
    let new = code_at(&totp, app.clock.now());
    if old != new {
        let stale = bearer_post(&app, "/2fa/verify", &tokens.access, json!({"code": old})).await;
        assert_error(&stale, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code");
    }
    let wrong = if new == "000000" { "111111" } else { "000000" };
    let refused = bearer_post(&app, "/2fa/verify", &tokens.access, json!({"code": wrong})).await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_code");
    assert_eq!(
        whoami(&app, &tokens.access).await.body["mfa_enabled"],
        false
    );

    let confirmed = bearer_post(&app, "/2fa/verify", &tokens.access, json!({"code": new})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    let mut codes: Vec<&str> = confirmed.body["recovery_codes"]
        .as_array()
        .expect("recovery_codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(codes.len(), 10, "{}", confirmed.text);
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), 10, "all different");
    assert_eq!(whoami(&app, &tokens.access).await.body["mfa_enabled"], true);

    let again = bearer_post(
        &app,
        "/2fa/setup",
        &tokens.access,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_error(&again, StatusCode::CONFLICT, "mfa_already_enabled");
}

async fn logging_in_with_an_authenticator_needs_a_code_and_the_mfa_token_works_once(app: TestApp) {
    let (email, _, tokens) = signed_in(&app).await;
    let (totp, _) = enrol_totp_via_api(&app, &tokens.access).await;

    let (mfa_token, methods) = mfa_login(&app, &email).await;
    assert!(methods.contains(&"totp".to_string()), "{methods:?}");
    assert!(
        methods.contains(&"recovery_code".to_string()),
        "{methods:?}"
    );
    assert!(!methods.contains(&"email".to_string()), "{methods:?}");

    let done = complete(&app, &mfa_token, &code_at(&totp, app.clock.now()), None).await;
    assert_eq!(done.body["token_type"], "Bearer", "{}", done.text);
    assert_eq!(done.body["expires_in"], 900);
    let tokens = Tokens::from(&done);
    assert_eq!(whoami(&app, &tokens.access).await.body["mfa_enabled"], true);

    app.clock.advance(30);
    let replay = complete(
        &app,
        &mfa_token,
        &code_at(&totp, app.clock.now()),
        Some("totp"),
    )
    .await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "invalid_mfa_token");
    let unknown = complete(
        &app,
        "no-such-token",
        &code_at(&totp, app.clock.now()),
        None,
    )
    .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_mfa_token");
}

async fn an_mfa_token_expires_after_five_minutes(app: TestApp) {
    let (email, _, tokens) = signed_in(&app).await;
    let (totp, _) = enrol_totp_via_api(&app, &tokens.access).await;
    let (mfa_token, _) = mfa_login(&app, &email).await;
    app.clock.advance(301);
    let late = complete(
        &app,
        &mfa_token,
        &code_at(&totp, app.clock.now()),
        Some("totp"),
    )
    .await;
    assert_error(&late, StatusCode::UNAUTHORIZED, "invalid_mfa_token");
}

async fn a_wrong_code_is_refused_but_the_mfa_token_can_be_retried(app: TestApp) {
    let (email, _, tokens) = signed_in(&app).await;
    let (totp, _) = enrol_totp_via_api(&app, &tokens.access).await;
    let (mfa_token, _) = mfa_login(&app, &email).await;
    let right = code_at(&totp, app.clock.now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = complete(&app, &mfa_token, wrong, Some("totp")).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_code");
    let done = complete(&app, &mfa_token, &right, Some("totp")).await;
    let tokens = Tokens::from(&done);
    assert_eq!(whoami(&app, &tokens.access).await.status, StatusCode::OK);
}

async fn five_wrong_codes_pause_the_second_step(app: TestApp) {
    let (email, _, tokens) = signed_in(&app).await;
    let (totp, _) = enrol_totp_via_api(&app, &tokens.access).await;
    let (mfa_token, _) = mfa_login(&app, &email).await;
    let right = code_at(&totp, app.clock.now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for attempt in 1..=5 {
        let refused = complete(&app, &mfa_token, wrong, Some("totp")).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            refused.text
        );
    }
    let paused = complete(&app, &mfa_token, &right, Some("totp")).await;
    assert_error(&paused, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(paused.header(RETRY_AFTER).is_some(), "Retry-After");
}

async fn a_recovery_code_completes_a_login_once(app: TestApp) {
    let (email, _, tokens) = signed_in(&app).await;
    let (_, codes) = enrol_totp_via_api(&app, &tokens.access).await;
    assert_eq!(codes.len(), 10);

    let (mfa_token, _) = mfa_login(&app, &email).await;
    let done = complete(&app, &mfa_token, &codes[3], Some("recovery_code")).await;
    Tokens::from(&done);

    let (mfa_token, _) = mfa_login(&app, &email).await;
    let again = complete(&app, &mfa_token, &codes[3], Some("recovery_code")).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "invalid_code");
    // Without `method`, the server tells a recovery code by its shape.
    let other = complete(&app, &mfa_token, &codes[4], None).await;
    Tokens::from(&other);
}

async fn an_emailed_code_completes_a_login(app: TestApp) {
    let email = signed_up(&app).await;
    turn_on_email_codes(&app, &email).await;

    let (mfa_token, methods) = mfa_login(&app, &email).await;
    assert!(methods.contains(&"email".to_string()), "{methods:?}");
    assert!(
        methods.contains(&"recovery_code".to_string()),
        "{methods:?}"
    );
    assert!(!methods.contains(&"totp".to_string()), "{methods:?}");

    let before = app.mails_to(&email).await.len();
    let sent = post(&app, "/2fa/email/send", json!({"mfa_token": mfa_token})).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert_eq!(sent.body["sent"], true);
    assert_eq!(sent.body["expires_in"], 600);
    assert_eq!(
        app.mails_to(&email).await.len(),
        before + 1,
        "a mail arrives"
    );
    let code = mailed_code(&app.last_mail_to(&email).await);
    assert_eq!(code.len(), 6, "a 6-digit code: {code}");

    let done = complete(&app, &mfa_token, &code, Some("email")).await;
    let tokens = Tokens::from(&done);
    let me = whoami(&app, &tokens.access).await;
    assert_eq!(me.str("email"), email);
    assert_eq!(me.body["mfa_enabled"], true);
}

async fn email_codes_are_not_sent_to_someone_who_has_not_turned_them_on(app: TestApp) {
    let (email, _, tokens) = signed_in(&app).await;
    enrol_totp_via_api(&app, &tokens.access).await;
    let (mfa_token, _) = mfa_login(&app, &email).await;
    let before = app.mails_to(&email).await.len();
    let refused = post(&app, "/2fa/email/send", json!({"mfa_token": mfa_token})).await;
    assert_error(&refused, StatusCode::CONFLICT, "email_codes_off");
    let unknown = post(
        &app,
        "/2fa/email/send",
        json!({"mfa_token": "no-such-token"}),
    )
    .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_mfa_token");
    assert_eq!(app.mails_to(&email).await.len(), before, "no mail");
}

// ---------------------------------------------------------------------------------------------
// Who am I, and the tokens themselves
// ---------------------------------------------------------------------------------------------

async fn whoami_describes_the_person_the_token_belongs_to(app: TestApp) {
    let (email, id, tokens) = signed_in(&app).await;
    let me = whoami(&app, &tokens.access).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.str("id"), id);
    assert_eq!(me.str("email"), email);
    assert_eq!(me.body["name"], Value::Null, "no name given");
    assert_eq!(me.body["roles"], json!([]));
    assert_eq!(me.body["email_verified"], false);
    assert_eq!(me.body["mfa_enabled"], false);

    app.store
        .add_user_role(&id, "editor", None)
        .await
        .expect("add role");
    let tokens = api_login(&app, &email).await;
    let me = whoami(&app, &tokens.access).await;
    assert_eq!(me.body["roles"], json!(["editor"]), "{}", me.text);
}

async fn whoami_refuses_missing_malformed_expired_and_foreign_tokens(app: TestApp) {
    let (_, _, tokens) = signed_in(&app).await;
    let missing = Answer::from(app.fresh_client().get(api(&app, "/whoami"))).await;
    assert_invalid_token(&missing, "no Authorization header");
    assert_invalid_token(&whoami(&app, "abc").await, "Bearer abc");
    let basic = Answer::from(
        app.fresh_client()
            .get(api(&app, "/whoami"))
            .header("authorization", format!("Basic {}", tokens.access)),
    )
    .await;
    assert_invalid_token(&basic, "not a Bearer scheme");
    assert_invalid_token(
        &whoami(&app, &tokens.refresh).await,
        "a refresh token is not an access token",
    );

    let foreign = client_credentials_token(&app).await;
    assert_invalid_token(&whoami(&app, &foreign).await, "an OAuth client's token");

    assert_eq!(whoami(&app, &tokens.access).await.status, StatusCode::OK);
    app.clock.advance(901);
    assert_invalid_token(&whoami(&app, &tokens.access).await, "an expired token");
}

async fn access_tokens_verify_against_the_published_keys_for_the_api_audience(app: TestApp) {
    let (_, id, tokens) = signed_in(&app).await;
    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("discovery JSON");
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    let jwks: JwkSet = app
        .fresh_client()
        .get(jwks_uri)
        .send()
        .await
        .expect("GET jwks")
        .json()
        .await
        .expect("a JWK set");

    let header = jsonwebtoken::decode_header(&tokens.access).expect("a JWT header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).expect("a usable key");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[app.url.as_str()]);
    validation.set_audience(&[format!("{}/api/v1", app.url)]);
    let claims = jsonwebtoken::decode::<Value>(&tokens.access, &key, &validation)
        .expect("signature, issuer and audience verify")
        .claims;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
        900
    );

    // Not valid for the OAuth audience.
    let mut oauth = Validation::new(header.alg);
    oauth.set_audience(&[app.url.as_str()]);
    assert!(jsonwebtoken::decode::<Value>(&tokens.access, &key, &oauth).is_err());
}

// ---------------------------------------------------------------------------------------------
// Refresh and logout
// ---------------------------------------------------------------------------------------------

async fn a_refresh_token_gives_new_tokens_once_and_reuse_ends_the_family(app: TestApp) {
    let (_, _, first) = signed_in(&app).await;
    let answer = refresh(&app, &first.refresh).await;
    assert_eq!(answer.body["token_type"], "Bearer", "{}", answer.text);
    assert_eq!(answer.body["expires_in"], 900);
    let second = Tokens::from(&answer);
    assert_ne!(second.refresh, first.refresh, "rotated");
    assert_ne!(second.access, first.access);
    assert_eq!(whoami(&app, &second.access).await.status, StatusCode::OK);

    let unknown = refresh(&app, "no-such-token").await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, "invalid_refresh_token");

    // Reusing the old one looks like theft: the whole family ends.
    let reused = refresh(&app, &first.refresh).await;
    assert_error(&reused, StatusCode::UNAUTHORIZED, "refresh_token_reused");
    let successor = refresh(&app, &second.refresh).await;
    assert_error(
        &successor,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
}

async fn logging_out_ends_the_refresh_token_and_the_presented_access_token(app: TestApp) {
    let (email, _, tokens) = signed_in(&app).await;
    let other = api_login(&app, &email).await;
    let answer = bearer_post(
        &app,
        "/logout",
        &tokens.access,
        json!({"refresh_token": tokens.refresh}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert_error(
        &refresh(&app, &tokens.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
    assert_invalid_token(&whoami(&app, &tokens.access).await, "a logged-out token");

    // Another login of the same person is untouched.
    assert_eq!(whoami(&app, &other.access).await.status, StatusCode::OK);
    Tokens::from(&refresh(&app, &other.refresh).await);

    // An unknown refresh token tells nothing.
    let unknown = post(&app, "/logout", json!({"refresh_token": "no-such-token"})).await;
    assert_eq!(unknown.status, StatusCode::NO_CONTENT, "{}", unknown.text);
}

async fn logging_out_everywhere_ends_every_token_and_browser_session(app: TestApp) {
    let (email, _, phone) = signed_in(&app).await;
    let tablet = api_login(&app, &email).await;
    browser_login(&app, &email).await;

    let answer = bearer_post(&app, "/logout-all", &phone.access, json!({})).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);

    for (name, tokens) in [("phone", &phone), ("tablet", &tablet)] {
        assert_invalid_token(&whoami(&app, &tokens.access).await, name);
        assert_error(
            &refresh(&app, &tokens.refresh).await,
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
        );
    }
    let account = app.get("/account").await;
    assert_eq!(
        account.status(),
        StatusCode::SEE_OTHER,
        "the browser is signed out"
    );
    assert!(
        location(&account).starts_with("/login"),
        "{}",
        location(&account)
    );

    // Logging in again works as before.
    let fresh = api_login(&app, &email).await;
    assert_eq!(whoami(&app, &fresh.access).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

async fn the_session_list_shows_app_logins_and_browsers_and_marks_the_current_one(app: TestApp) {
    let (email, _, phone) = signed_in(&app).await;
    let tablet = api_login(&app, &email).await;
    browser_login(&app, &email).await;

    let phone_id = current_session_id(&app, &phone.access).await;
    let tablet_id = current_session_id(&app, &tablet.access).await;
    assert_ne!(phone_id, tablet_id);

    let list = sessions(&app, &phone.access).await;
    assert_eq!(list.len(), 3, "{list:?}");
    for session in &list {
        assert!(session["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert!(session["client"].is_string(), "{session}");
        assert!(looks_like_rfc3339(&session["created_at"]), "{session}");
        assert!(looks_like_rfc3339(&session["last_used_at"]), "{session}");
        assert!(session["user_agent"].is_string() || session["user_agent"].is_null());
        assert!(session["ip"].is_string() || session["ip"].is_null());
    }
    let by_id = |id: &str| {
        list.iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("session {id} in {list:?}"))
    };
    let phone_line = by_id(&phone_id);
    assert_eq!(phone_line["kind"], "app");
    assert_eq!(phone_line["current"], true);
    assert_eq!(phone_line["client"], "Portcullis API");
    assert_eq!(phone_line["user_agent"], USER_AGENT);
    let tablet_line = by_id(&tablet_id);
    assert_eq!(tablet_line["kind"], "app");
    assert_eq!(tablet_line["current"], false);
    let browsers: Vec<&Value> = list.iter().filter(|s| s["kind"] == "browser").collect();
    assert_eq!(browsers.len(), 1, "{list:?}");
    assert_eq!(browsers[0]["current"], false);

    // The hosted account page lists the app logins too.
    let account = app.page("/account").await;
    assert!(account.contains("Portcullis API"));
    assert!(account.contains(&format!("name=\"id\" value=\"{phone_id}\"")));
    assert!(account.contains(&format!("name=\"id\" value=\"{tablet_id}\"")));
}

async fn ending_an_app_login_from_the_list_stops_its_tokens(app: TestApp) {
    let (email, _, phone) = signed_in(&app).await;
    let tablet = api_login(&app, &email).await;
    let tablet_id = current_session_id(&app, &tablet.access).await;

    let ended = bearer_delete(&app, &format!("/sessions/{tablet_id}"), &phone.access).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.text);
    assert_error(
        &refresh(&app, &tablet.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
    assert_invalid_token(
        &whoami(&app, &tablet.access).await,
        "an ended login's token",
    );

    assert_eq!(whoami(&app, &phone.access).await.status, StatusCode::OK);
    let list = sessions(&app, &phone.access).await;
    assert!(
        list.iter().all(|s| s["id"] != tablet_id.as_str()),
        "{list:?}"
    );
}

async fn ending_a_browser_session_from_the_list_signs_that_browser_out(app: TestApp) {
    let (email, _, phone) = signed_in(&app).await;
    browser_login(&app, &email).await;
    let list = sessions(&app, &phone.access).await;
    let browser_id = list
        .iter()
        .find(|s| s["kind"] == "browser")
        .and_then(|s| s["id"].as_str())
        .unwrap_or_else(|| panic!("a browser session in {list:?}"))
        .to_string();
    let ended = bearer_delete(&app, &format!("/sessions/{browser_id}"), &phone.access).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.text);
    let account = app.get("/account").await;
    assert_eq!(
        account.status(),
        StatusCode::SEE_OTHER,
        "the browser is signed out"
    );
    assert_eq!(whoami(&app, &phone.access).await.status, StatusCode::OK);
}

async fn sessions_that_are_not_ones_own_cannot_be_ended(app: TestApp) {
    let (_, _, mine) = signed_in(&app).await;
    let (_, _, theirs) = signed_in(&app).await;
    let their_id = current_session_id(&app, &theirs.access).await;

    let unknown = bearer_delete(&app, "/sessions/no-such-session", &mine.access).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    let foreign = bearer_delete(&app, &format!("/sessions/{their_id}"), &mine.access).await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");

    assert_eq!(whoami(&app, &theirs.access).await.status, StatusCode::OK);
    Tokens::from(&refresh(&app, &theirs.refresh).await);
    assert_invalid_token(
        &Answer::from(app.fresh_client().get(api(&app, "/sessions"))).await,
        "listing needs a token",
    );
}

async fn an_app_login_can_be_signed_out_from_the_account_page(app: TestApp) {
    let (email, _, phone) = signed_in(&app).await;
    let phone_id = current_session_id(&app, &phone.access).await;
    browser_login(&app, &email).await;

    let account = app.page("/account").await;
    assert!(account.contains("action=\"/account/sessions/end\""));
    let csrf = hidden_value(&account, "csrf_token").expect("csrf");
    let ended = app
        .post_form(
            "/account/sessions/end",
            &[("csrf_token", &csrf), ("id", &phone_id)],
        )
        .await;
    assert_eq!(location(&ended), "/account");
    assert_error(
        &refresh(&app, &phone.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
    assert_invalid_token(&whoami(&app, &phone.access).await, "a signed-out app login");
    assert!(!app.page("/account").await.contains(&phone_id));
}

// ---------------------------------------------------------------------------------------------
// CORS and the OpenAPI document
// ---------------------------------------------------------------------------------------------

async fn preflight(app: &TestApp, origin: &str) -> Answer {
    Answer::from(
        app.fresh_client()
            .request(Method::OPTIONS, api(app, "/login"))
            .header(ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            ),
    )
    .await
}

async fn cross_origin_calls_are_allowed_only_from_configured_origins(mut app: TestApp) {
    let off = preflight(&app, "https://app.example").await;
    assert_eq!(
        off.header("access-control-allow-origin"),
        None,
        "CORS is off by default"
    );

    app.restart_with(|raw| raw.cors_allowed_origins = vec!["https://app.example"].into())
        .await;
    let allowed = preflight(&app, "https://app.example").await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.header("access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    let other = preflight(&app, "https://evil.example").await;
    assert_eq!(other.header("access-control-allow-origin"), None);

    // An actual call from the allowed origin carries the header too.
    let (email, _) = api_signup(&app).await;
    let login = Answer::from(
        app.fresh_client()
            .post(api(&app, "/login"))
            .header(ORIGIN, "https://app.example")
            .json(&json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert_eq!(
        login.header("access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
}

async fn the_openapi_document_lists_every_endpoint_and_each_one_answers(app: TestApp) {
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    // An independent OpenAPI 3.1 model (the oas3 crate) reads the whole document: every path,
    // operation, schema and security scheme must have the form the specification gives.
    let spec = oas3::from_json(&text).expect("the document is valid OpenAPI");
    spec.validate_version()
        .expect("an OpenAPI version oas3 supports");
    let operations = spec.operations().count();
    assert!(operations >= 12, "{operations} operations are described");
    let doc: Value = serde_json::from_str(&text).expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/signup",
        "/api/v1/login",
        "/api/v1/2fa/setup",
        "/api/v1/2fa/verify",
        "/api/v1/2fa/email/send",
        "/api/v1/whoami",
        "/api/v1/token/refresh",
        "/api/v1/logout",
        "/api/v1/logout-all",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }

    // Every documented path and method is served.
    let client = app.fresh_client();
    let mut checked = 0;
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let concrete = path.replace("{id}", "00000000000000000000000000000000");
        for method in item.keys() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            if ![
                Method::GET,
                Method::POST,
                Method::DELETE,
                Method::PUT,
                Method::PATCH,
            ]
            .contains(&method)
            {
                continue;
            }
            let mut request = client.request(method.clone(), app.at(&concrete));
            if method != Method::GET {
                request = request.json(&json!({}));
            }
            let status = request.send().await.expect("request").status();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is served"
            );
            if !path.contains('{') {
                assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path} is served");
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "every operation was tried ({checked})");
}
