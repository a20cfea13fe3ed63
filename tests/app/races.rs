//! Limits under parallel requests: N requests released together by a barrier, and the exact
//! count that got through. Each limit counts an attempt before the work it limits, in one
//! statement, so the count holds on both backends however the requests interleave.

use std::sync::Arc;

use portcullis::store::AuditFilter;
use reqwest::StatusCode;
use tokio::sync::Barrier;

use crate::helpers::{PASSWORD, TestApp, hidden_value, signed_up, unique_email};
use crate::two_factor::enrol_totp;

backend_tests!(
    thirty_parallel_wrong_passwords_are_evaluated_no_more_than_the_account_limit,
    parallel_right_passwords_all_sign_in_and_leave_no_attempt_counted,
    thirty_parallel_wrong_codes_are_checked_no_more_than_the_second_step_limit,
    parallel_sign_ups_from_one_address_create_no_more_than_the_limit,
    thirty_parallel_wrong_admin_confirmations_are_checked_no_more_than_the_limit,
    thirty_parallel_reset_requests_send_no_more_mails_than_the_limit,
);

const PARALLEL: usize = 30;

/// A browser of its own at `path`, with the form's CSRF token.
pub async fn browser_at(app: &TestApp, path: &str) -> (reqwest::Client, String) {
    let client = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&client, path).await;
    (client, csrf)
}

/// Sends every prepared post at once; returns the answers' statuses.
pub async fn all_at_once(
    app: &TestApp,
    path: &'static str,
    posts: Vec<(reqwest::Client, Vec<(String, String)>)>,
) -> Vec<StatusCode> {
    let barrier = Arc::new(Barrier::new(posts.len()));
    let mut tasks = Vec::new();
    for (client, fields) in posts {
        let barrier = barrier.clone();
        let url = app.at(path);
        let origin = app.url.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .post(url)
                .header(reqwest::header::ORIGIN, origin)
                .form(&fields)
                .send()
                .await
                .expect("POST")
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("request task"));
    }
    statuses
}

/// A browser of its own that posts `password`; returns it and the answer.
async fn sign_in_with(
    app: &TestApp,
    email: &str,
    password: &str,
) -> (reqwest::Client, reqwest::Response) {
    let (client, csrf) = browser_at(app, "/login").await;
    let answer = app
        .post_form_with(
            &client,
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", email),
                ("password", password),
            ],
        )
        .await;
    (client, answer)
}

async fn password_sign_in(app: &TestApp, email: &str) -> (reqwest::Client, reqwest::Response) {
    sign_in_with(app, email, PASSWORD).await
}

/// `n` browsers of their own, each with a sign-in form for `email` and `password`, for
/// `all_at_once`.
async fn sign_in_posts(
    app: &TestApp,
    email: &str,
    password: &str,
    n: usize,
) -> Vec<(reqwest::Client, Vec<(String, String)>)> {
    let mut posts = Vec::new();
    for _ in 0..n {
        let (client, csrf) = browser_at(app, "/login").await;
        let form = fields(&[
            ("csrf_token", &csrf),
            ("email", email),
            ("password", password),
        ]);
        posts.push((client, form));
    }
    posts
}

pub fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

pub fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn thirty_parallel_wrong_passwords_are_evaluated_no_more_than_the_account_limit(
    app: TestApp,
) {
    let email = signed_up(&app).await;
    let posts = sign_in_posts(&app, &email, "wrong-password-123", PARALLEL).await;
    let statuses = all_at_once(&app, "/login", posts).await;
    assert_eq!(
        count(&statuses, StatusCode::UNAUTHORIZED),
        5,
        "exactly the account limit was evaluated: {statuses:?}"
    );
    assert_eq!(
        count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        PARALLEL - 5
    );

    // The right password after the burst does not sign in while the account is paused.
    let (client, right) = password_sign_in(&app, &email).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    let account = client
        .get(app.at("/account"))
        .send()
        .await
        .expect("GET /account");
    assert_eq!(account.status(), StatusCode::SEE_OTHER, "not signed in");
}

/// Right passwords in parallel, as many as the account limit: each is counted before its hash
/// and settled after it (the account's attempts forgotten and the address's given back, both
/// rows in one statement), so all sign in, none deadlocks on Postgres, and nothing stays
/// counted: the account can still fail its whole limit, and no more.
async fn parallel_right_passwords_all_sign_in_and_leave_no_attempt_counted(app: TestApp) {
    const ACCOUNT_LIMIT: usize = 5; // PORTCULLIS_LOGIN_MAX_FAILURES_PER_ACCOUNT's default
    let email = signed_up(&app).await;
    let posts = sign_in_posts(&app, &email, PASSWORD, ACCOUNT_LIMIT).await;
    let statuses = all_at_once(&app, "/login", posts).await;
    assert_eq!(
        count(&statuses, StatusCode::SEE_OTHER),
        ACCOUNT_LIMIT,
        "every right password signs in: {statuses:?}"
    );
    let mut wrong = Vec::new();
    for _ in 0..=ACCOUNT_LIMIT {
        let (_, answer) = sign_in_with(&app, &email, "wrong-password-123").await;
        wrong.push(answer.status());
    }
    let mut expected = vec![StatusCode::UNAUTHORIZED; ACCOUNT_LIMIT];
    expected.push(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(wrong, expected, "the whole limit is left, and no more");
}

async fn thirty_parallel_wrong_codes_are_checked_no_more_than_the_second_step_limit(app: TestApp) {
    let email = signed_up(&app).await;
    enrol_totp(&app).await;
    // Thirty browsers each past the password, at the second step.
    let mut posts = Vec::new();
    for _ in 0..PARALLEL {
        let (client, login) = password_sign_in(&app, &email).await;
        assert_eq!(login.status(), StatusCode::SEE_OTHER, "to the second step");
        let page = client
            .get(app.at("/login/verify?method=totp"))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("page");
        let csrf = hidden_value(&page, "csrf_token").expect("csrf");
        let form = fields(&[
            ("csrf_token", &csrf),
            ("method", "totp"),
            ("code", "000000"),
        ]);
        posts.push((client, form));
    }
    let statuses = all_at_once(&app, "/login/verify", posts).await;
    let wrong = count(&statuses, StatusCode::UNAUTHORIZED);
    let paused = count(&statuses, StatusCode::TOO_MANY_REQUESTS);
    // "000000" could be the right code once in a million steps; then it is not a guess.
    assert_eq!(wrong, 5, "exactly the code limit was checked: {statuses:?}");
    assert_eq!(paused, PARALLEL - 5);
}

async fn parallel_sign_ups_from_one_address_create_no_more_than_the_limit(mut app: TestApp) {
    app.restart_with(|raw| raw.signup_max_per_ip = 5).await;
    let mut posts = Vec::new();
    for _ in 0..20 {
        let (client, csrf) = browser_at(&app, "/signup").await;
        let email = unique_email();
        let form = fields(&[
            ("csrf_token", &csrf),
            ("email", &email),
            ("password", PASSWORD),
            ("display_name", ""),
        ]);
        posts.push((client, form));
    }
    let statuses = all_at_once(&app, "/signup", posts).await;
    assert_eq!(
        count(&statuses, StatusCode::SEE_OTHER),
        5,
        "five accounts: {statuses:?}"
    );
    assert_eq!(app.store.count_users().await.expect("count"), 5);
}

async fn thirty_parallel_wrong_admin_confirmations_are_checked_no_more_than_the_limit(
    app: TestApp,
) {
    let email = signed_up(&app).await;
    let admin = crate::helpers::make_admin(&app, &email).await;
    enrol_totp(&app).await;
    let csrf = app.csrf_token("/admin/users").await;
    let posts = (0..PARALLEL)
        .map(|_| {
            let form = fields(&[
                ("csrf_token", &csrf),
                ("password", "not-my-password"),
                ("next", "/admin/users"),
            ]);
            (app.client.clone(), form)
        })
        .collect();
    let statuses = all_at_once(&app, "/admin/confirm", posts).await;
    // Every answer is the password page again (401); the paused ones say so.
    assert_eq!(
        count(&statuses, StatusCode::UNAUTHORIZED),
        PARALLEL,
        "{statuses:?}"
    );
    let filter = AuditFilter {
        user_id: Some(admin.id.clone()),
        event: Some("admin.confirm_failed".into()),
        ..Default::default()
    };
    let failures = app.store.audit_events(&filter, 100).await.expect("audit");
    assert_eq!(failures.len(), 5, "exactly the limit was checked");
}

async fn thirty_parallel_reset_requests_send_no_more_mails_than_the_limit(app: TestApp) {
    let email = signed_up(&app).await;
    let mut posts = Vec::new();
    for _ in 0..PARALLEL {
        let (client, csrf) = browser_at(&app, "/password/forgot").await;
        posts.push((client, fields(&[("csrf_token", &csrf), ("email", &email)])));
    }
    let statuses = all_at_once(&app, "/password/forgot", posts).await;
    assert!(
        statuses
            .iter()
            .all(|s| s.is_success() || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let resets = app
        .mails_to(&email)
        .await
        .iter()
        .filter(|mail| mail.contains("/password/reset"))
        .count();
    assert_eq!(resets, 3, "three reset mails an hour per address");
}
