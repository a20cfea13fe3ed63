//! More sign-ins at once than the password workers can serve in the queue bound: the rest are
//! answered at once with 503 and `Retry-After`, and other requests keep being answered.
//! Nothing here is timed: the assertions are about answers, counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, signed_up};

backend_tests!(beyond_the_hash_queue_sign_ins_are_refused_at_once_and_jwks_keeps_answering,);

const SIGN_INS: usize = 40;

async fn beyond_the_hash_queue_sign_ins_are_refused_at_once_and_jwks_keeps_answering(
    mut app: TestApp,
) {
    app.restart_with(|raw| {
        raw.password_queue_timeout = Duration::from_millis(100);
        // Every attempt must reach the hashing queue, not the sign-in throttle.
        raw.login_max_failures_per_account = 1000;
        raw.login_max_failures_per_ip = 1000;
    })
    .await;
    let email = signed_up(&app).await;
    let mut browsers = Vec::new();
    for _ in 0..SIGN_INS {
        let client = app.fresh_client_with_cookies();
        let csrf = app.csrf_token_with(&client, "/login").await;
        browsers.push((client, csrf));
    }

    let finished = Arc::new(AtomicUsize::new(0));
    let sign_ins = futures::future::join_all(browsers.iter().map(|(client, csrf)| {
        let finished = finished.clone();
        let app = &app;
        let email = &email;
        async move {
            let answer = app
                .post_form_with(
                    client,
                    "/login",
                    &[
                        ("csrf_token", csrf),
                        ("email", email),
                        ("password", PASSWORD),
                    ],
                )
                .await;
            let status = answer.status();
            let retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let page = answer.text().await.unwrap_or_default();
            finished.fetch_add(1, Ordering::SeqCst);
            (status, retry_after, page)
        }
    }));
    let jwks = async {
        let mut answered_meanwhile = 0;
        while finished.load(Ordering::SeqCst) < SIGN_INS {
            let answer = app.get("/oauth/jwks").await;
            assert_eq!(answer.status(), StatusCode::OK, "JWKS answers under load");
            if finished.load(Ordering::SeqCst) < SIGN_INS {
                answered_meanwhile += 1;
            }
            tokio::task::yield_now().await;
        }
        answered_meanwhile
    };
    let (answers, answered_meanwhile) = futures::join!(sign_ins, jwks);

    let signed_in = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SEE_OTHER)
        .count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(
        signed_in + refused.len(),
        SIGN_INS,
        "each sign-in either went through or was refused as busy: {:?}",
        answers.iter().map(|(s, _, _)| s).collect::<Vec<_>>()
    );
    assert!(signed_in >= 1, "the workers kept signing people in");
    assert!(
        !refused.is_empty(),
        "beyond the queue bound, sign-ins are refused"
    );
    for (_, retry_after, page) in refused {
        assert_eq!(retry_after.as_deref(), Some("2"));
        assert!(page.contains("Busy for a moment"), "a calm page: {page}");
    }
    assert!(
        answered_meanwhile >= 1,
        "JWKS was answered while sign-ins were waiting for the hash pool"
    );

    // The refused attempts were given back: the account is not paused afterwards.
    let client = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&client, "/login").await;
    let answer = app
        .post_form_with(
            &client,
            "/login",
            &[
                ("csrf_token", &csrf),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
}
