//! Rules of the sign-in service that a security review found broken: account pre-hijacking
//! through a provider link, an unfinished authenticator used as proof, and what a password
//! reset ends.

use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{PASSWORD, TestApp, hidden_value, location, signed_up, unique_email};
use crate::two_factor::{code_at, enable_email_codes, enrol_totp};
use crate::upstream::{google_sign_in, upstream_person, with_google};

backend_tests!(
    linking_a_provider_is_refused_while_the_address_is_unconfirmed,
    a_reset_by_the_owner_removes_what_a_squatter_attached_before_the_address_was_confirmed,
    an_authenticator_whose_set_up_was_not_finished_confirms_nothing,
    a_reset_ends_other_reset_links_api_second_steps_and_half_finished_sign_ins,
    adding_a_second_factor_needs_a_recent_sign_in_or_confirmation,
    linking_a_provider_from_the_account_page_needs_a_recent_sign_in,
    look_alike_spellings_of_an_address_are_one_account_whose_mail_reaches_the_owner,
    addresses_stored_before_normalisation_are_rewritten_at_start_and_collisions_kept,
    the_owner_gets_a_mail_for_each_change_to_how_the_account_is_signed_in_to,
    the_defaults_are_short_sessions_and_admins_with_a_second_factor,
);

const SQUATTER_PASSWORD: &str = "squatters-own-pass-77";

/// The authenticator being set up, from the secret its set-up page shows.
async fn pending_totp(app: &TestApp) -> TOTP {
    let setup = app.page("/account/security/totp").await;
    let start = setup.find("id=\"secret\">").expect("secret") + "id=\"secret\">".len();
    let secret: String = setup[start..]
        .split('<')
        .next()
        .unwrap_or_default()
        .replace(' ', "");
    let bytes = Secret::Encoded(secret).to_bytes().expect("base32");
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()).expect("totp")
}

async fn linking_a_provider_is_refused_while_the_address_is_unconfirmed(b: TestApp) {
    let (a, b) = with_google(b).await;
    // The squatter has a Google account of their own, and makes an account here with the
    // owner's address before the owner does; they are signed straight in (verification is off).
    let squatter_google = upstream_person(&a).await;
    let owners_address = unique_email();
    assert_eq!(
        b.signup(&owners_address, SQUATTER_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let back = google_sign_in(&a, &b, "", &squatter_google).await;
    assert_eq!(location(&back), "/account");
    let account = b.page("/account").await;
    assert!(
        account.contains("Confirm your email address first"),
        "the link is refused: {account}"
    );
    let user = b
        .store
        .find_user_by_email(&owners_address)
        .await
        .expect("query")
        .expect("the squatted account");
    assert!(
        b.store
            .identities_of(&user.id)
            .await
            .expect("links")
            .is_empty()
    );
}

async fn a_reset_by_the_owner_removes_what_a_squatter_attached_before_the_address_was_confirmed(
    b: TestApp,
) {
    let (a, b) = with_google(b).await;
    let squatter_google = upstream_person(&a).await;
    let owners_address = unique_email();
    assert_eq!(
        b.signup(&owners_address, SQUATTER_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let squatted = b
        .store
        .find_user_by_email(&owners_address)
        .await
        .expect("query")
        .expect("the squatted account");
    // A link made by an earlier version, which did not refuse it, and an authenticator.
    let google_subject = a
        .store
        .find_user_by_email(&squatter_google)
        .await
        .expect("query")
        .expect("the squatter at Google")
        .id;
    b.store
        .link_identity(
            &squatted.id,
            "google",
            &google_subject,
            Some(&squatter_google),
            1,
            None,
        )
        .await
        .expect("old link");
    enrol_totp(&b).await;
    b.logout().await;

    // The owner resets the password from the mail that reaches them.
    let owner = b.fresh_client_with_cookies();
    let csrf = b.csrf_token_with(&owner, "/password/forgot").await;
    b.post_form_with(
        &owner,
        "/password/forgot",
        &[("csrf_token", &csrf), ("email", &owners_address)],
    )
    .await;
    let link = b.link_in(&b.last_mail_to(&owners_address).await, "/password/reset");
    let token = link.split("token=").nth(1).expect("token").to_string();
    let csrf = b.csrf_token_with(&owner, &link).await;
    let new_password = "owners-new-password-5";
    let done = b
        .post_form_with(
            &owner,
            "/password/reset",
            &[
                ("csrf_token", &csrf),
                ("token", &token),
                ("password", new_password),
            ],
        )
        .await;
    assert_eq!(location(&done), "/login");
    let after = b
        .store
        .find_user_by_id(&squatted.id)
        .await
        .expect("query")
        .expect("the account");
    assert!(after.email_verified, "the reset proved the address");
    assert!(
        b.store
            .identities_of(&squatted.id)
            .await
            .expect("links")
            .is_empty()
    );
    assert!(
        b.store
            .totp_factor(&squatted.id)
            .await
            .expect("q")
            .is_none(),
        "authenticator gone"
    );

    // The squatter's Google sign-in no longer reaches the owner's account.
    let back = google_sign_in(&a, &b, "", &squatter_google).await;
    assert_eq!(location(&back), "/account");
    let account = b.page("/account").await;
    assert!(
        account.contains(&squatter_google),
        "a separate account of the squatter's own"
    );
    assert!(!account.contains(&owners_address));
}

async fn an_authenticator_whose_set_up_was_not_finished_confirms_nothing(app: TestApp) {
    let email = signed_up(&app).await;
    // Codes by email on, as the account's second factor.
    enable_email_codes(&app, &email, true).await;
    assert!(
        app.store
            .find_user_by_email(&email)
            .await
            .expect("q")
            .expect("u")
            .email_otp_enabled
    );

    // An authenticator set-up started but never confirmed…
    let csrf = app.csrf_token("/account/security").await;
    app.post_form("/account/security/totp/setup", &[("csrf_token", &csrf)])
        .await;
    let pending = pending_totp(&app).await;

    // …does not confirm turning email codes off.
    let csrf = app.csrf_token("/account/security").await;
    let answer = app
        .post_form(
            "/account/security/email-otp/disable",
            &[
                ("csrf_token", &csrf),
                ("password", ""),
                ("code", &code_at(&pending, app.clock.now())),
            ],
        )
        .await;
    assert_eq!(location(&answer), "/account/security");
    let security = app.page("/account/security").await;
    assert!(
        security.contains("Enter your password or a current code from your authenticator app"),
        "refused with a message: {security}"
    );
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("q")
        .expect("u");
    assert!(user.email_otp_enabled, "codes by email are still on");
}

async fn a_reset_ends_other_reset_links_api_second_steps_and_half_finished_sign_ins(app: TestApp) {
    let email = signed_up(&app).await;
    let (totp, _) = enrol_totp(&app).await;
    app.logout().await;

    // Two reset links.
    let mut links = Vec::new();
    for _ in 0..2 {
        let csrf = app.csrf_token("/password/forgot").await;
        app.post_form(
            "/password/forgot",
            &[("csrf_token", &csrf), ("email", &email)],
        )
        .await;
        links.push(app.link_in(&app.last_mail_to(&email).await, "/password/reset"));
    }
    assert_ne!(links[0], links[1]);
    // An API sign-in waiting for its second step, and a browser at the second step.
    let api = app.fresh_client();
    let login: Value = api
        .post(app.at("/api/v1/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("API login")
        .json()
        .await
        .expect("JSON");
    let mfa_token = login["mfa_token"]
        .as_str()
        .expect("an mfa_token")
        .to_string();
    let half = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&half, "/login").await;
    let first = app
        .post_form_with(
            &half,
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(location(&first).starts_with("/login/verify"));

    // The owner resets with the second link.
    let token = links[1].split("token=").nth(1).expect("token").to_string();
    let csrf = app.csrf_token(&links[1]).await;
    let done = app
        .post_form(
            "/password/reset",
            &[
                ("csrf_token", &csrf),
                ("token", &token),
                ("password", "a-brand-new-pass-3"),
            ],
        )
        .await;
    assert_eq!(location(&done), "/login");

    app.clock.advance(30);
    let code = code_at(&totp, app.clock.now());
    let other_link = app.get(&links[0]).await;
    assert!(
        other_link.status().is_client_error(),
        "the other link ended"
    );
    let second = api
        .post(app.at("/api/v1/2fa/verify"))
        .json(&json!({"mfa_token": mfa_token, "code": code}))
        .send()
        .await
        .expect("verify");
    assert_eq!(
        second.status(),
        StatusCode::UNAUTHORIZED,
        "the mfa_token ended"
    );
    let page = half
        .get(app.at("/login/verify?method=totp"))
        .send()
        .await
        .expect("GET");
    let csrf = hidden_value(&page.text().await.unwrap_or_default(), "csrf_token");
    if let Some(csrf) = csrf {
        let finish = app
            .post_form_with(
                &half,
                "/login/verify",
                &[("csrf_token", &csrf), ("method", "totp"), ("code", &code)],
            )
            .await;
        assert_ne!(
            location(&finish),
            "/account",
            "the half-finished sign-in ended"
        );
    }
    let account = half.get(app.at("/account")).send().await.expect("GET");
    assert_eq!(account.status(), StatusCode::SEE_OTHER, "not signed in");
}

async fn adding_a_second_factor_needs_a_recent_sign_in_or_confirmation(app: TestApp) {
    let email = signed_up(&app).await;
    // Sixteen minutes after signing in, the session alone no longer adds a factor.
    app.clock.advance(16 * 60);
    let csrf = app.csrf_token("/account/security").await;
    let refused = app
        .post_form("/account/security/totp/setup", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = refused.text().await.unwrap_or_default();
    assert!(page.contains("Confirm it is you") && page.contains("Nothing was changed yet"));
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("q")
        .expect("u");
    assert!(
        app.store.totp_factor(&user.id).await.expect("q").is_none(),
        "nothing started"
    );
    let csrf = hidden_value(&page, "csrf_token").expect("csrf");
    let refused = app
        .post_form(
            "/account/security/email-otp/setup",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "email codes too");

    let wrong = app
        .post_form(
            "/account/confirm",
            &[
                ("csrf_token", &csrf),
                ("password", "not-my-password-1"),
                ("next", "/account/security"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = app
        .post_form(
            "/account/confirm",
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("next", "/account/security"),
            ],
        )
        .await;
    assert_eq!(location(&right), "/account/security");
    let started = app
        .post_form("/account/security/totp/setup", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(location(&started), "/account/security/totp");

    // The set-up started but never finished is no proof for the next step-up.
    let pending = pending_totp(&app).await;
    app.clock.advance(16 * 60);
    let by_pending_code = app
        .post_form(
            "/account/confirm",
            &[
                ("csrf_token", &csrf),
                ("password", ""),
                ("code", &code_at(&pending, app.clock.now())),
                ("next", "/account/security"),
            ],
        )
        .await;
    assert_eq!(by_pending_code.status(), StatusCode::UNAUTHORIZED);
}

async fn linking_a_provider_from_the_account_page_needs_a_recent_sign_in(b: TestApp) {
    let (_a, b) = with_google(b).await;
    let email = signed_up(&b).await;
    let user = b
        .store
        .find_user_by_email(&email)
        .await
        .expect("q")
        .expect("u");
    b.store
        .set_email_verified(&user.id, b.clock.now(), None)
        .await
        .expect("verify");
    b.clock.advance(16 * 60);
    let start = b.get("/auth/oauth/google").await;
    assert_eq!(
        start.status(),
        StatusCode::FORBIDDEN,
        "no trip to the provider"
    );
    let page = start.text().await.unwrap_or_default();
    assert!(page.contains("Confirm it is you"), "{page}");
}

async fn look_alike_spellings_of_an_address_are_one_account_whose_mail_reaches_the_owner(
    app: TestApp,
) {
    // The squatter types the Kelvin sign (U+212A) for the K of the owner's address.
    let owner = format!("kim-{}@example.com", uuid::Uuid::new_v4().simple());
    let look_alike = owner.replacen('k', "\u{212A}", 1);
    assert_ne!(look_alike, owner);
    assert_eq!(
        app.signup(&look_alike, SQUATTER_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let stored = app
        .store
        .find_user_by_email(&owner)
        .await
        .expect("query")
        .expect("one account for both spellings");
    assert_eq!(stored.email, owner, "stored in its normal form");
    app.logout().await;

    // The owner cannot get a second account beside it…
    let taken = app.signup(&owner.to_uppercase(), PASSWORD).await;
    assert_eq!(taken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.store.count_users().await.expect("count"), 1);
    // …but the reset mail goes to the owner's real address, so they can take it over.
    let csrf = app.csrf_token("/password/forgot").await;
    app.post_form(
        "/password/forgot",
        &[("csrf_token", &csrf), ("email", &owner)],
    )
    .await;
    let mail = app.last_mail_to(&owner).await;
    assert!(mail.contains("/password/reset"), "the owner got the link");
    assert!(
        app.mails_to(&look_alike).await.is_empty(),
        "nothing went to the look-alike"
    );
}

/// Runs SQL on the app's database as an older version would have left it.
async fn as_an_older_version_left_it(app: &TestApp, statements: &[String]) {
    use sqlx::Connection;
    match &app.database_url {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            for sql in statements {
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .expect("old state");
            }
        }
        None => {
            let path = app.data_dir.join("portcullis.db");
            let url = format!("sqlite://{}", path.display());
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            for sql in statements {
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .expect("old state");
            }
        }
    }
}

async fn addresses_stored_before_normalisation_are_rewritten_at_start_and_collisions_kept(
    mut app: TestApp,
) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::new();
    for email in [
        format!("kim-{tag}@example.com"),
        format!("ann-{tag}@example.com"),
        format!("bob-{tag}@example.com"),
    ] {
        let response = app.signup(&email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        app.logout().await;
        let user = app
            .store
            .find_user_by_email(&email)
            .await
            .expect("q")
            .expect("u");
        ids.push(user.id);
    }
    // As stored before addresses were normalised: the Kelvin sign kept, and the old key (plain
    // lower case); Bob's row spells Ann's address in upper case under its own old key.
    let kelvin = format!("\u{212A}im-{tag}@Example.COM");
    as_an_older_version_left_it(
        &app,
        &[
            "delete from maintenance_done".to_string(),
            format!(
                "update users set email = '{kelvin}', email_lower = '{}' where id = '{}'",
                kelvin.to_lowercase(),
                ids[0]
            ),
            format!(
                "update users set email = 'ANN-{tag}@EXAMPLE.COM', email_lower = 'old-key-{tag}' where id = '{}'",
                ids[2]
            ),
        ],
    )
    .await;
    app.restart().await;
    let kim = app
        .store
        .find_user_by_id(&ids[0])
        .await
        .expect("q")
        .expect("kim");
    assert_eq!(kim.email, format!("kim-{tag}@example.com"), "rewritten");
    let bob = app
        .store
        .find_user_by_id(&ids[2])
        .await
        .expect("q")
        .expect("bob");
    assert_eq!(
        bob.email,
        format!("ANN-{tag}@EXAMPLE.COM"),
        "a collision is left as it was"
    );
    let ann = app
        .store
        .find_user_by_id(&ids[1])
        .await
        .expect("q")
        .expect("ann");
    assert_eq!(ann.email, format!("ann-{tag}@example.com"), "not merged");
    let collisions = app.store.normalise_stored_emails(0).await.expect("again");
    assert_eq!(
        collisions,
        vec![(ids[2].clone(), format!("ann-{tag}@example.com"))]
    );
}

async fn the_owner_gets_a_mail_for_each_change_to_how_the_account_is_signed_in_to(
    mut app: TestApp,
) {
    let smtp = crate::smtp_sink::SmtpSink::start().await;
    let smtp_url = smtp.url();
    app.restart_with(|raw| raw.smtp_url = Some(smtp_url)).await;
    let email = signed_up(&app).await;
    let notices = |smtp: &crate::smtp_sink::SmtpSink| -> Vec<String> {
        smtp.messages()
            .iter()
            .map(|raw| crate::helpers::decode_quoted_printable(raw))
            .filter(|mail| mail.contains(&email) && mail.contains("Subject: Security notice"))
            .collect()
    };
    app.mail_settled().await;
    assert!(notices(&smtp).is_empty(), "no notice for signing up");

    enrol_totp(&app).await;
    let csrf = app.csrf_token("/account/security").await;
    app.post_form(
        "/account/security/recovery-codes",
        &[("csrf_token", &csrf), ("password", PASSWORD)],
    )
    .await;
    let csrf = app.csrf_token("/account/password").await;
    let changed = app
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "another-long-pass-4"),
            ],
        )
        .await;
    assert_eq!(location(&changed), "/account");

    app.mail_settled().await;
    let sent = notices(&smtp);
    for what in [
        "an authenticator app was added to your account",
        "new recovery codes were made",
        "your password was changed",
    ] {
        assert!(
            sent.iter()
                .any(|mail| mail.contains(&format!("Security notice: {what}"))),
            "a notice: {what}; sent: {sent:#?}"
        );
    }
    assert!(
        sent.iter().all(|mail| mail.contains("/password/forgot")),
        "a way to act"
    );
}

async fn the_defaults_are_short_sessions_and_admins_with_a_second_factor(mut app: TestApp) {
    let defaults = portcullis::config::Config::from_raw(portcullis::config::RawConfig::default())
        .expect("the defaults are valid");
    assert_eq!(defaults.session_idle_timeout.as_secs(), 30 * 60);
    assert_eq!(defaults.session_max_lifetime.as_secs(), 12 * 3600);
    assert!(defaults.admin_require_second_factor);

    // An admin without a second factor is sent to set one up; with one, the panel opens.
    let email = signed_up(&app).await;
    let user = app
        .store
        .find_user_by_email(&email)
        .await
        .expect("q")
        .expect("u");
    app.store
        .add_user_role(&user.id, "admin", None)
        .await
        .expect("grant admin");
    let refused = app.get("/admin/users").await;
    assert_eq!(location(&refused), "/account/security");
    assert!(
        app.page("/account/security")
            .await
            .contains("to open the admin panel")
    );
    enrol_totp(&app).await;
    assert_eq!(app.get("/admin/users").await.status(), StatusCode::OK);

    // Over https the visitor's CSRF cookie and the session cookie carry the `__Host-` prefix
    // (and so Secure, Path=/, no Domain).
    let https = app.url.replace("http://", "https://");
    app.restart_with(|raw| raw.public_url = https.clone()).await;
    let page = app
        .fresh_client()
        .get(app.at("/login"))
        .send()
        .await
        .expect("GET");
    let set_cookie = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.contains(name))
            .unwrap_or_else(|| panic!("a {name} cookie"))
            .to_string()
    };
    let visitor = set_cookie(&page, "portcullis_csrf=");
    let token = crate::helpers::hidden_value(&page.text().await.expect("page"), "csrf_token")
        .expect("a form token");
    let signed_in = app
        .fresh_client()
        .post(app.at("/login"))
        .header("origin", &https)
        .header("cookie", visitor.split(';').next().expect("name=value"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", email.as_str()),
            ("password", crate::helpers::PASSWORD),
        ])
        .send()
        .await
        .expect("POST /login");
    let session = set_cookie(&signed_in, "portcullis_session=");
    for cookie in [visitor, session] {
        assert!(cookie.starts_with("__Host-portcullis_"), "{cookie}");
        assert!(
            cookie.contains("Secure") && cookie.contains("Path=/"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
}
