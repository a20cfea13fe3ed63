//! The store's own cases, run against SQLite and Postgres through the public `Store` API.

use portcullis::store::{AuditEvent, AuditFilter, NewUser, RefreshTokenRow};

use crate::helpers::TestApp;

backend_tests!(
    users_are_found_by_email_whatever_its_case,
    a_second_user_with_the_same_email_is_a_unique_violation,
    throttle_attempts_are_counted_per_key_up_to_the_limit_within_the_window,
    a_refresh_token_rotates_once_even_when_two_requests_race,
    audit_events_past_retention_are_forgotten_and_newer_ones_kept,
);

fn new_user(email: &str, roles: &[&str]) -> NewUser {
    NewUser {
        email: email.into(),
        display_name: Some("Ann".into()),
        password_hash: Some("$argon2id$stub-not-checked-here".into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        email_verified: false,
        identity: None,
        now: 1_700_000_000,
    }
}

async fn users_are_found_by_email_whatever_its_case(app: TestApp) {
    let store = &app.store;
    let created = store
        .create_user(new_user("Ann@Example.com", &["support", "admin"]), |_| None)
        .await
        .expect("create");
    assert_eq!(created.roles, vec!["admin", "support"]);
    let found = store
        .find_user_by_email("  ann@EXAMPLE.com ")
        .await
        .expect("query")
        .expect("found");
    assert_eq!(found, created);
    assert!(found.is_admin());
    assert_eq!(found.email, "Ann@Example.com", "the email is kept as typed");
    let by_id = store
        .find_user_by_id(&created.id)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(by_id.display_name.as_deref(), Some("Ann"));
    assert!(!by_id.disabled && !by_id.email_verified && by_id.last_login_at.is_none());

    store
        .record_login(&created.id, 1_700_000_500)
        .await
        .expect("record");
    store
        .set_user_disabled(&created.id, true, 1_700_000_600, None)
        .await
        .expect("disable");
    let updated = store
        .find_user_by_id(&created.id)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(updated.last_login_at, Some(1_700_000_500));
    assert!(updated.disabled);
    assert_eq!(updated.updated_at, 1_700_000_600);
    assert!(
        store
            .find_user_by_email("nobody@example.com")
            .await
            .expect("query")
            .is_none()
    );
}

async fn a_second_user_with_the_same_email_is_a_unique_violation(app: TestApp) {
    let store = &app.store;
    store
        .create_user(new_user("bo@example.com", &[]), |_| None)
        .await
        .expect("first");
    let err = store
        .create_user(new_user("BO@example.com", &["admin"]), |_| None)
        .await
        .expect_err("refused");
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(store.count_users().await.expect("count"), 1);
    // The refused user's roles were not left behind.
    let user = store
        .find_user_by_email("bo@example.com")
        .await
        .expect("query")
        .expect("found");
    assert!(user.roles.is_empty());
}

async fn throttle_attempts_are_counted_per_key_up_to_the_limit_within_the_window(app: TestApp) {
    let store = &app.store;
    let key = "email:a@example.com";
    // Window of 100 s from the first attempt at t=1000, limit 3.
    let take = |key: &'static str, at: i64| async move {
        store
            .take_throttle_attempt(key, at, at - 100, 3)
            .await
            .expect("take")
    };
    for at in [1000, 1010, 1020] {
        assert!(take(key, at).await);
    }
    assert!(!take(key, 1030).await, "full");
    assert_eq!(
        store.throttle_window(key).await.expect("q"),
        Some((1000, 3))
    );
    // Another key has its own count.
    assert!(take("ip:127.0.0.1", 1030).await);
    // A given-back attempt makes room for one more.
    store.release_throttle_attempt(key).await.expect("release");
    assert!(take(key, 1040).await);
    assert!(!take(key, 1050).await);
    // Once the window has passed, a new one starts with this attempt.
    assert!(take(key, 1101).await);
    assert_eq!(
        store.throttle_window(key).await.expect("q"),
        Some((1101, 1))
    );
    assert_eq!(
        store.prune_throttle_events(1030).await.expect("prune"),
        1,
        "the ip window"
    );
    // A right password: the account's attempts are forgotten and the address gets one back
    // (never below none), in one statement.
    let ip = "ip:10.0.0.1";
    for at in [1102, 1103] {
        assert!(take(key, at).await);
        assert!(take(ip, at).await);
    }
    store.forget_and_give_back(key, ip).await.expect("settle");
    assert_eq!(
        store.throttle_window(key).await.expect("q"),
        Some((1101, 0))
    );
    assert_eq!(store.throttle_window(ip).await.expect("q"), Some((1102, 1)));
    store.forget_and_give_back(key, ip).await.expect("settle");
    store.forget_and_give_back(key, ip).await.expect("settle");
    assert_eq!(store.throttle_window(ip).await.expect("q"), Some((1102, 0)));
    for at in [1104, 1105, 1106] {
        assert!(take(key, at).await);
    }
    assert!(
        !take(key, 1107).await,
        "a forgotten account counts up to the limit again, and no further"
    );
    store.clear_throttle(key).await.expect("clear");
    assert_eq!(store.throttle_window(key).await.expect("q"), None);
}

fn refresh_row(hash: &str, user_id: &str, now: i64) -> RefreshTokenRow {
    RefreshTokenRow {
        token_hash: hash.into(),
        family_id: "family-1".into(),
        client_id: "client-1".into(),
        user_id: user_id.into(),
        scope: "openid offline_access".into(),
        resources: String::new(),
        auth_time: now,
        amr: "pwd".into(),
        session_epoch: 0,
        code_hash: None,
        created_at: now,
        expires_at: now + 3600,
        rotated_at: None,
        revoked_at: None,
        ip: None,
        user_agent: None,
        family_created_at: Some(now),
    }
}

async fn a_refresh_token_rotates_once_even_when_two_requests_race(app: TestApp) {
    let store = &app.store;
    let user = store
        .create_user(new_user("rita@example.com", &[]), |_| None)
        .await
        .expect("user");
    let now = 1_700_000_000;
    store
        .insert_refresh_token(&refresh_row("first", &user.id, now))
        .await
        .expect("first token");
    let (a, b) = (
        refresh_row("second-a", &user.id, now + 1),
        refresh_row("second-b", &user.id, now + 1),
    );
    let (won_a, won_b) = tokio::join!(
        store.rotate_refresh_token("first", now + 1, Some(&a)),
        store.rotate_refresh_token("first", now + 1, Some(&b)),
    );
    let (won_a, won_b) = (won_a.expect("rotate a"), won_b.expect("rotate b"));
    assert!(won_a ^ won_b, "exactly one rotation wins: {won_a} {won_b}");
    let first = store
        .find_refresh_token("first")
        .await
        .expect("q")
        .expect("kept");
    assert_eq!(first.rotated_at, Some(now + 1));
    let stored_a = store
        .find_refresh_token("second-a")
        .await
        .expect("q")
        .is_some();
    let stored_b = store
        .find_refresh_token("second-b")
        .await
        .expect("q")
        .is_some();
    assert_eq!(
        (stored_a, stored_b),
        (won_a, won_b),
        "only the winner's successor exists"
    );
    // A rotated token never rotates again.
    let late = refresh_row("second-c", &user.id, now + 2);
    assert!(
        !store
            .rotate_refresh_token("first", now + 2, Some(&late))
            .await
            .expect("rotate")
    );
}

async fn audit_events_past_retention_are_forgotten_and_newer_ones_kept(app: TestApp) {
    let store = &app.store;
    let event = |happened_at: i64, name: &str| AuditEvent {
        id: 0,
        happened_at,
        event: name.into(),
        actor_id: None,
        subject_id: None,
        detail: None,
        ip: None,
        user_agent: None,
    };
    let now = 1_800_000_000;
    for (at, name) in [(now - 400 * 86_400, "old"), (now - 10, "new")] {
        store
            .insert_audit_event(&event(at, name))
            .await
            .expect("insert");
    }
    let pruned = store
        .prune_audit_events(now - 365 * 86_400)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    let left = store
        .audit_events(&AuditFilter::default(), 10)
        .await
        .expect("list");
    let names: Vec<&str> = left.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["new"]);
}
