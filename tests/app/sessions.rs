use reqwest::StatusCode;

use crate::helpers::{TestApp, location, signed_up};

const MINUTE: i64 = 60;

backend_tests!(
    a_restart_keeps_users_and_the_browser_session,
    an_idle_session_ends_after_the_idle_timeout,
    an_active_session_still_ends_at_the_absolute_lifetime,
    a_disabled_account_loses_its_session_at_once,
);

async fn a_restart_keeps_users_and_the_browser_session(mut app: TestApp) {
    let email = signed_up(&app).await;
    app.restart().await;
    let account = app.page("/account").await;
    assert!(
        account.contains(&email),
        "still signed in after the restart"
    );
}

async fn an_idle_session_ends_after_the_idle_timeout(app: TestApp) {
    // The default idle timeout is 30 minutes (NIST SP 800-63B AAL2).
    signed_up(&app).await;
    app.clock.advance(29 * MINUTE);
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::OK,
        "29 minutes idle is fine"
    );
    app.clock.advance(30 * MINUTE + 1);
    let response = app.get("/account").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "30 minutes idle ends the session"
    );
    assert_eq!(location(&response), "/login?next=/account");
}

async fn an_active_session_still_ends_at_the_absolute_lifetime(app: TestApp) {
    signed_up(&app).await;
    // Active every 20 minutes: never idle for 30, but 12 hours is the limit.
    for step in 1..=35 {
        app.clock.advance(20 * MINUTE);
        assert_eq!(
            app.get("/account").await.status(),
            StatusCode::OK,
            "after {} minutes",
            step * 20
        );
    }
    app.clock.advance(21 * MINUTE);
    assert_eq!(
        app.get("/account").await.status(),
        StatusCode::SEE_OTHER,
        "after 12 h 20 min"
    );
}

async fn a_disabled_account_loses_its_session_at_once(app: TestApp) {
    let email = signed_up(&app).await;
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
    assert_eq!(app.get("/account").await.status(), StatusCode::SEE_OTHER);
    let again = app.login(&email, crate::helpers::PASSWORD).await;
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    assert!(
        again
            .text()
            .await
            .unwrap_or_default()
            .contains("This account is disabled.")
    );
}
