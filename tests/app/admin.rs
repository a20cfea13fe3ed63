//! The admin panel through the browser: who gets in, clients, finding and disabling people,
//! roles in tokens, the password confirmation before changes, and the audit log.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::store::{NewUser, User};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{PASSWORD, TestApp, hidden_value, location, signed_up, unique_email};

backend_tests!(
    visitors_and_non_admins_are_kept_out,
    an_admin_creates_edits_rotates_and_deletes_a_client,
    an_admin_finds_a_user_and_disables_them,
    role_changes_show_up_in_new_tokens,
    changes_need_a_recent_sign_in,
    the_user_list_pages_by_keyset_and_deleting_needs_the_email,
    sessions_are_listed_and_can_be_ended_by_the_person_and_an_admin,
    the_overview_charts_sign_ins_second_steps_tokens_and_refusals,
);

/// `app.client` is signed in as a new admin; returns the admin.
pub async fn admin(app: &TestApp) -> User {
    let email = signed_up(app).await;
    let user = crate::helpers::make_admin(app, &email).await;
    // Admins need a second factor (PORTCULLIS_ADMIN_REQUIRE_SECOND_FACTOR, on by default).
    crate::two_factor::enrol_totp(app).await;
    user
}

/// A person with their own browser, signed in.
async fn person(app: &TestApp) -> (reqwest::Client, User) {
    let browser = app.fresh_client_with_cookies();
    let email = unique_email();
    let csrf = app.csrf_token_with(&browser, "/signup").await;
    let response = app
        .post_form_with(
            &browser,
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("email", &email),
                ("password", PASSWORD),
                ("display_name", "Nora Quill"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("query")
        .expect("person");
    (browser, user)
}

/// Posts an admin form found on `page`, with the page's CSRF token.
async fn admin_post(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let csrf = app.csrf_token("/admin/clients/new").await;
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    app.post_form(path, &all).await
}

/// A refresh token for `browser`'s person, through the code flow with a first-party client.
async fn refresh_token_for(app: &TestApp, browser: &reqwest::Client) -> (String, String, String) {
    let out = app
        .run_cli(&[
            "client",
            "create",
            "--name",
            "Ledger",
            "--redirect-uri",
            "https://ledger.example.com/cb",
            "--skip-consent",
        ])
        .await;
    let id = out[0]["client_id"].as_str().expect("id").to_string();
    let secret = out[0]["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let verifier = "verifier-verifier-verifier-verifier-verifier-0123";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={id}\
         &redirect_uri=https%3A%2F%2Fledger.example.com%2Fcb\
         &scope=openid%20offline_access&state=s&code_challenge={challenge}\
         &code_challenge_method=S256"
    );
    let answer = browser
        .get(app.at(&authorize))
        .send()
        .await
        .expect("authorize");
    let target = url::Url::parse(&location(&answer)).expect("redirect to the app");
    let code = target
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens: Value = app
        .fresh_client()
        .post(app.at("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://ledger.example.com/cb"),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    (id, secret, refresh)
}

async fn refresh(app: &TestApp, id: &str, secret: &str, token: &str) -> (StatusCode, Value) {
    let response = app
        .fresh_client()
        .post(app.at("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .expect("refresh");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

async fn visitors_and_non_admins_are_kept_out(app: TestApp) {
    for path in ["/admin", "/admin/users", "/admin/clients", "/admin/audit"] {
        let visitor = app.get(path).await;
        assert_eq!(visitor.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(location(&visitor).starts_with("/login?next="), "{path}");
    }
    let (browser, user) = person(&app).await;
    for path in ["/admin", "/admin/users", "/admin/clients", "/admin/audit"] {
        let answer = browser.get(app.at(path)).send().await.expect("GET");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Forms too, with a valid CSRF token of their own session.
    let csrf = app.csrf_token_with(&browser, "/account").await;
    let answer = app
        .post_form_with(
            &browser,
            &format!("/admin/users/{}/roles-add", user.id),
            &[("csrf_token", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let user = app
        .store
        .find_user_by_id(&user.id)
        .await
        .expect("q")
        .expect("u");
    assert!(!user.is_admin());
    assert!(
        !browser
            .get(app.at("/account"))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .unwrap_or_default()
            .contains("href=\"/admin\"")
    );
}

async fn an_admin_creates_edits_rotates_and_deletes_a_client(app: TestApp) {
    admin(&app).await;
    assert!(app.page("/account").await.contains("href=\"/admin\""));
    let form = app.page("/admin/clients/new").await;
    let created = app
        .post_form(
            "/admin/clients",
            &[
                (
                    "csrf_token",
                    &hidden_value(&form, "csrf_token").expect("csrf"),
                ),
                ("name", "Report Runner"),
                ("redirect_uris", ""),
                ("post_logout_redirect_uris", ""),
                ("grant_client_credentials", "on"),
                ("scopes", "reports"),
                ("access_token_ttl", "600"),
                ("refresh_token_ttl", "86400"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let page = created.text().await.unwrap_or_default();
    assert!(page.contains("only time it is shown"));
    let between = |start: &str| {
        page.split(start)
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .expect("value on the page")
            .to_string()
    };
    let id = between("<code id=\"client-id\">");
    let secret = between("<p class=\"secret-once\" id=\"client-secret\">");
    let token = |secret: String| {
        let app = &app;
        let id = id.clone();
        async move {
            app.fresh_client()
                .post(app.at("/oauth/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("token")
        }
    };
    let first = token(secret.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["expires_in"], 600, "the lifetime from the form");

    // Edit: a new name and a shorter lifetime.
    let edit = app.page(&format!("/admin/clients/{id}")).await;
    assert!(edit.contains("value=\"Report Runner\""));
    let saved = app
        .post_form(
            &format!("/admin/clients/{id}"),
            &[
                (
                    "csrf_token",
                    &hidden_value(&edit, "csrf_token").expect("csrf"),
                ),
                ("name", "Nightly Reports"),
                ("grant_client_credentials", "on"),
                ("scopes", "reports"),
                ("access_token_ttl", "300"),
                ("refresh_token_ttl", "86400"),
            ],
        )
        .await;
    assert_eq!(location(&saved), format!("/admin/clients/{id}"));
    assert!(app.page("/admin/clients").await.contains("Nightly Reports"));
    let body: Value = token(secret.clone()).await.json().await.expect("json");
    assert_eq!(body["expires_in"], 300, "the edit applies at once");

    // A bad edit is refused with the reason, and nothing changes.
    let refused = admin_post(
        &app,
        &format!("/admin/clients/{id}"),
        &[
            ("name", "Nightly Reports"),
            ("scopes", "reports"),
            ("access_token_ttl", "300"),
            ("refresh_token_ttl", "86400"),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .text()
            .await
            .unwrap_or_default()
            .contains("choose at least one grant type")
    );

    // Rotate: the old secret stops working, the new one works.
    let rotated = admin_post(&app, &format!("/admin/clients/{id}/rotate-secret"), &[]).await;
    let page = rotated.text().await.unwrap_or_default();
    let new_secret = page
        .split("<p class=\"secret-once\" id=\"client-secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("new secret")
        .to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(token(secret).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(token(new_secret.clone()).await.status(), StatusCode::OK);

    // Delete.
    let deleted = admin_post(&app, &format!("/admin/clients/{id}/delete"), &[]).await;
    assert_eq!(location(&deleted), "/admin/clients");
    assert!(app.page("/admin/clients").await.contains("No clients yet"));
    assert_eq!(token(new_secret).await.status(), StatusCode::UNAUTHORIZED);

    let audit = app.page("/admin/audit").await;
    for event in [
        "admin.client_created",
        "admin.client_updated",
        "admin.client_secret_rotated",
        "admin.client_deleted",
    ] {
        assert!(audit.contains(event), "{event} in the audit log");
    }
}

async fn an_admin_finds_a_user_and_disables_them(app: TestApp) {
    admin(&app).await;
    let (browser, user) = person(&app).await;
    let (id, secret, refresh_token) = refresh_token_for(&app, &browser).await;
    // A failed sign-in, for the audit log.
    let stranger = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&stranger, "/login").await;
    app.post_form_with(
        &stranger,
        "/login",
        &[
            ("csrf_token", &csrf),
            ("email", &user.email),
            ("password", "wrong-password-1"),
        ],
    )
    .await;

    // Found by the start of the email, and by the start of the name.
    let prefix: String = user.email.chars().take(12).collect();
    let found = app.page(&format!("/admin/users?q={prefix}")).await;
    assert!(found.contains(&user.email));
    let by_name = app.page("/admin/users?q=nora%20q").await;
    assert!(by_name.contains(&user.email));
    let none = app.page("/admin/users?q=zzzz-nobody").await;
    assert!(!none.contains(&user.email) && none.contains("No users"));

    let page = app.page(&format!("/admin/users/{}", user.id)).await;
    assert!(page.contains("Nora Quill"), "the name is shown");
    let disabled = app
        .post_form(
            &format!("/admin/users/{}/disable", user.id),
            &[(
                "csrf_token",
                &hidden_value(&page, "csrf_token").expect("csrf"),
            )],
        )
        .await;
    assert_eq!(location(&disabled), format!("/admin/users/{}", user.id));
    assert!(
        app.page(&format!("/admin/users/{}", user.id))
            .await
            .contains("disabled")
    );

    // The person's session, sign-in and refresh token all stop working.
    let account = browser.get(app.at("/account")).send().await.expect("GET");
    assert_eq!(account.status(), StatusCode::SEE_OTHER);
    let csrf = app.csrf_token_with(&browser, "/login").await;
    let login = app
        .post_form_with(
            &browser,
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", &user.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    let (status, body) = refresh(&app, &id, &secret, &refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // The audit log has the admin action and the failed sign-in, and filters by user and type.
    let audit = app.page(&format!("/admin/audit?user={}", user.email)).await;
    assert!(
        audit.contains("<td>admin.user_disabled</td>") && audit.contains("<td>sign_in_failed</td>")
    );
    let only_failures = app.page("/admin/audit?event=sign_in_failed").await;
    assert!(
        only_failures.contains("<td>sign_in_failed</td>")
            && !only_failures.contains("<td>admin.user_disabled</td>")
    );
    let cli = app.page("/admin/audit?event=cli.client_created").await;
    assert!(
        cli.contains("<td>cli.client_created</td>"),
        "CLI changes are audited"
    );
    let future = app.page("/admin/audit?from=2999-01-01").await;
    assert!(future.contains("No events"));
    let bad_date = app.page("/admin/audit?from=yesterday").await;
    assert!(bad_date.contains("YYYY-MM-DD"));

    // Enabled again, the person can sign in.
    let page = app.page(&format!("/admin/users/{}", user.id)).await;
    app.post_form(
        &format!("/admin/users/{}/enable", user.id),
        &[(
            "csrf_token",
            &hidden_value(&page, "csrf_token").expect("csrf"),
        )],
    )
    .await;
    let csrf = app.csrf_token_with(&browser, "/login").await;
    let login = app
        .post_form_with(
            &browser,
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", &user.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let own = browser
        .get(app.at("/account"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .unwrap_or_default();
    assert!(own.contains("Recent security events") && own.contains("Changed by an administrator"));
    assert!(own.contains("Failed sign-in attempt"));
}

async fn role_changes_show_up_in_new_tokens(app: TestApp) {
    admin(&app).await;
    let (browser, user) = person(&app).await;
    let (id, secret, first) = refresh_token_for(&app, &browser).await;
    let page = app.page(&format!("/admin/users/{}", user.id)).await;
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");
    let bad = app
        .post_form(
            &format!("/admin/users/{}/roles-add", user.id),
            &[("csrf_token", &csrf), ("role", "has space")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    app.post_form(
        &format!("/admin/users/{}/roles-add", user.id),
        &[("csrf_token", &csrf), ("role", "Billing")],
    )
    .await;
    let (status, body) = refresh(&app, &id, &secret, &first).await;
    assert_eq!(status, StatusCode::OK);
    let roles = claims(body["access_token"].as_str().expect("access token"))["roles"].clone();
    assert_eq!(roles, serde_json::json!(["billing"]));

    app.post_form(
        &format!("/admin/users/{}/roles-remove", user.id),
        &[("csrf_token", &csrf), ("role", "billing")],
    )
    .await;
    let next = body["refresh_token"].as_str().expect("rotated");
    let (_, body) = refresh(&app, &id, &secret, next).await;
    let roles = claims(body["access_token"].as_str().expect("access token"))["roles"].clone();
    assert_eq!(roles, serde_json::json!([]));
    let audit = app.page("/admin/audit?event=admin.role_granted").await;
    assert!(audit.contains("billing"));
}

async fn changes_need_a_recent_sign_in(app: TestApp) {
    admin(&app).await;
    let (_browser, user) = person(&app).await;
    let page = app.page(&format!("/admin/users/{}", user.id)).await;
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");
    app.clock.advance(16 * 60);
    // Pages still show; a change asks for the password instead of happening.
    assert!(app.page("/admin/users").await.contains(&user.email));
    let asked = app
        .post_form(
            &format!("/admin/users/{}/disable", user.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(asked.status(), StatusCode::FORBIDDEN);
    let html = asked.text().await.unwrap_or_default();
    assert!(html.contains("Confirm it is you") && html.contains("Nothing was changed yet"));
    let stored = app
        .store
        .find_user_by_id(&user.id)
        .await
        .expect("q")
        .expect("u");
    assert!(!stored.disabled);

    let next = hidden_value(&html, "next").expect("next");
    let wrong = app
        .post_form(
            "/admin/confirm",
            &[
                ("csrf_token", &csrf),
                ("password", "not-my-password"),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = app
        .post_form(
            "/admin/confirm",
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(location(&right), format!("/admin/users/{}", user.id));
    let done = app
        .post_form(
            &format!("/admin/users/{}/disable", user.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let stored = app
        .store
        .find_user_by_id(&user.id)
        .await
        .expect("q")
        .expect("u");
    assert!(stored.disabled);
    assert!(
        app.page("/admin/audit")
            .await
            .contains("admin.confirm_failed")
    );
}

async fn the_user_list_pages_by_keyset_and_deleting_needs_the_email(app: TestApp) {
    let me = admin(&app).await;
    let now = app.clock.now();
    for i in 0..60 {
        app.store
            .create_user(
                NewUser {
                    email: format!("page-{i:03}@list.example"),
                    display_name: None,
                    password_hash: None,
                    roles: Vec::new(),
                    email_verified: false,
                    identity: None,
                    now,
                },
                |_| None,
            )
            .await
            .expect("user");
    }
    let first = app.page("/admin/users?q=page-").await;
    assert!(first.contains("page-000@list.example") && first.contains("page-049@list.example"));
    assert!(!first.contains("page-050@list.example"));
    let next = first
        .split("href=\"/admin/users?q=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next page link")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let second = app.page(&format!("/admin/users?q={next}")).await;
    assert!(second.contains("page-050@list.example") && second.contains("page-059@list.example"));
    assert!(!second.contains("page-049@list.example"));
    // Every user, unfiltered, starts with the first email in order.
    assert!(app.page("/admin/users").await.contains(&me.email));

    let victim = app
        .store
        .find_user_by_email("page-007@list.example")
        .await
        .expect("q")
        .expect("u");
    let confirm = app
        .page(&format!("/admin/users/{}/delete", victim.id))
        .await;
    let csrf = hidden_value(&confirm, "csrf_token").expect("csrf");
    let wrong = app
        .post_form(
            &format!("/admin/users/{}/delete", victim.id),
            &[
                ("csrf_token", &csrf),
                ("confirm_email", "someone@else.example"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::SEE_OTHER);
    assert!(
        app.store
            .find_user_by_id(&victim.id)
            .await
            .expect("q")
            .is_some()
    );
    let right = app
        .post_form(
            &format!("/admin/users/{}/delete", victim.id),
            &[
                ("csrf_token", &csrf),
                ("confirm_email", "PAGE-007@list.example"),
            ],
        )
        .await;
    assert_eq!(location(&right), "/admin/users");
    assert!(
        app.store
            .find_user_by_id(&victim.id)
            .await
            .expect("q")
            .is_none()
    );
    assert!(
        app.page("/admin/audit?event=admin.user_deleted")
            .await
            .contains("page-007@list.example")
    );
}

async fn sessions_are_listed_and_can_be_ended_by_the_person_and_an_admin(app: TestApp) {
    admin(&app).await;
    let (laptop, user) = person(&app).await;
    let phone = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&phone, "/login").await;
    let login = phone
        .post(app.at("/login"))
        .header("origin", &app.url)
        .header("user-agent", "PhoneBrowser/1.0")
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", &user.email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);

    let page = |client: &reqwest::Client| {
        let client = client.clone();
        let url = app.at("/account");
        async move { client.get(url).send().await.expect("GET") }
    };
    let account = page(&laptop).await.text().await.unwrap_or_default();
    assert!(account.contains("PhoneBrowser/1.0") && account.contains("this browser"));
    assert_eq!(
        account.matches("action=\"/account/sessions/end\"").count(),
        1,
        "only the other one"
    );
    let phone_session = account
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the phone's session id")
        .to_string();
    let csrf = hidden_value(&account, "csrf_token").expect("csrf");
    let ended = app
        .post_form_with(
            &laptop,
            "/account/sessions/end",
            &[("csrf_token", &csrf), ("id", &phone_session)],
        )
        .await;
    assert_eq!(location(&ended), "/account");
    assert_eq!(
        page(&phone).await.status(),
        StatusCode::SEE_OTHER,
        "the phone is signed out"
    );
    assert_eq!(
        page(&laptop).await.status(),
        StatusCode::OK,
        "the laptop is not"
    );

    // The admin sees the remaining session and ends it.
    let admin_page = app.page(&format!("/admin/users/{}", user.id)).await;
    assert!(admin_page.contains("Active sessions"));
    let laptop_session = admin_page
        .split("name=\"session_id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the laptop's session id")
        .to_string();
    assert_ne!(laptop_session, phone_session);
    let revoked = app
        .post_form(
            &format!("/admin/users/{}/sessions-revoke", user.id),
            &[
                (
                    "csrf_token",
                    &hidden_value(&admin_page, "csrf_token").expect("csrf"),
                ),
                ("session_id", &laptop_session),
            ],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page(&laptop).await.status(),
        StatusCode::SEE_OTHER,
        "the laptop is signed out"
    );
    assert!(
        app.page(&format!("/admin/users/{}", user.id))
            .await
            .contains("Not signed in anywhere")
    );
    assert!(
        app.page("/admin/audit?event=admin.session_revoked")
            .await
            .contains("<td>admin.session_revoked</td>")
    );
}

/// The numbers between `start` and `end` in `html`, such as "3 sign-ins, 1 failed.".
fn phrase<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} in the page"))
        + start.len();
    let to = from + html[from..].find(end).expect("the end");
    html[from..to].trim()
}

async fn the_overview_charts_sign_ins_second_steps_tokens_and_refusals(mut app: TestApp) {
    app.restart_with(|raw| raw.login_max_failures_per_account = 2)
        .await;
    // The admin enrols an authenticator app and signs in again with it (one second step).
    let email = signed_up(&app).await;
    crate::helpers::make_admin(&app, &email).await;
    let (totp, _) = crate::two_factor::enrol_totp(&app).await;
    app.logout().await;
    let first = app.login(&email, crate::helpers::PASSWORD).await;
    assert!(location(&first).starts_with("/login/verify"));
    // The enrolment used this time step's code: the next one.
    app.clock.advance(30);
    let code = crate::two_factor::code_at(&totp, app.clock.now());
    let second = crate::two_factor::submit_code(&app, "totp", &code).await;
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    let (browser, person) = person(&app).await;
    drop(browser);
    // One sign-in, then three wrong passwords: two failures, the third refused by a limit.
    let signed_in = app
        .fresh_client()
        .post(app.at("/api/v1/login"))
        .json(&serde_json::json!({ "email": person.email, "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .expect("POST /api/v1/login");
    assert_eq!(signed_in.status(), StatusCode::OK);
    for _ in 0..3 {
        let response = app
            .fresh_client()
            .post(app.at("/api/v1/login"))
            .json(&serde_json::json!({ "email": person.email, "password": "wrong" }))
            .send()
            .await
            .expect("POST /api/v1/login");
        assert!(response.status().is_client_error());
    }
    let (id, secret) = crate::helpers::machine_client(&app, "reports").await;
    let token = crate::helpers::client_credentials_grant(&app, &id, &secret).await;
    assert_eq!(token.status(), StatusCode::OK);

    let page = app.get("/admin").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("page");
    assert!(html.contains("<h1>Overview</h1>"));
    assert_eq!(phrase(&html, "<dt>Users</dt><dd>", "</dd>"), "2");
    assert_eq!(
        phrase(&html, "<dt>With a second factor</dt><dd>", "</dd>"),
        "1"
    );
    assert_eq!(phrase(&html, "<dt>Apps (clients)</dt><dd>", "</dd>"), "1");
    // A sign-up is no sign-in; the refused attempt is no failure (no password was checked).
    for chart in ["last 24 hours", "last 30 days"] {
        let part = &html[html.find(chart).expect("the chart")..];
        assert_eq!(
            phrase(part, "<p class=\"muted\">", "<span"),
            "2 signed in, 2 failed."
        );
    }
    assert!(html.contains("<svg class=\"bars\""), "an SVG chart");
    assert!(!html.contains("<script"), "no script");
    for (what, count) in [
        ("Authenticator app", "1"),
        ("client_credentials", "1"),
        ("login_account", "1"),
    ] {
        let row = format!("<td>{what}</td>\n      <td>{count}</td>");
        assert!(html.contains(&row), "{what}: {count}\n{html}");
    }
    assert!(
        html.contains("sign_in_failed"),
        "the latest security events"
    );
}
