//! Events as the apps around the server receive them: written with their change (the outbox),
//! posted as signed Standard Webhooks that the `standardwebhooks` crate verifies, retried until
//! the receiver takes them, and published to NATS JetStream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use portcullis::events::webhooks::{self, NewEndpoint};
use portcullis::store::DeliveryRow;
use reqwest::StatusCode;
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use tokio::net::TcpListener;

use crate::helpers::{PASSWORD, TestApp, unique_email};
use crate::upstream::{google_sign_in, upstream_person, with_google};

backend_tests!(
    each_way_of_creating_an_account_writes_one_user_created_event_of_one_shape,
    parallel_sign_ups_of_one_address_write_one_account_and_one_event,
    webhooks_are_signed_retried_after_a_500_and_keep_their_id,
    an_endpoint_gets_only_the_types_it_asked_for,
    webhooks_reach_no_private_address_unless_allowed,
    the_webhook_commands_add_list_test_rotate_and_remove,
    a_subjects_events_arrive_in_order_even_when_the_first_is_retried,
    an_admin_sees_a_failed_delivery_and_sends_it_again,
    changes_to_accounts_clients_and_keys_each_write_their_event,
    sign_in_events_are_written_only_when_asked_for,
    an_admin_granting_a_role_writes_user_updated_once,
    jetstream_receives_each_event_under_its_id,
);

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn id(&self) -> String {
        self.headers["webhook-id"]
            .to_str()
            .expect("webhook-id")
            .to_string()
    }

    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A webhook receiver on loopback that records every request and answers 500 to the first
/// `failures` of them (after `delay`), 204 to the rest.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests that arrived, answered or not yet.
    arrived: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(failures: usize, delay: Duration) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answered = Arc::new(AtomicUsize::new(0));
        let arrived: Arc<AtomicUsize> = Arc::default();
        let count = arrived.clone();
        let log = received.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let log = log.clone();
                let answered = answered.clone();
                count.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    let status = if answered.fetch_add(1, Ordering::SeqCst) < failures {
                        AxumStatus::INTERNAL_SERVER_ERROR
                    } else {
                        AxumStatus::NO_CONTENT
                    };
                    log.lock().unwrap().push(Received {
                        headers,
                        body,
                        status: status.as_u16(),
                    });
                    status
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://localhost:{}/hook",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            received,
            arrived,
        }
    }

    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until `done` holds for what arrived; returns it.
    pub async fn wait_until(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..300 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the receiver never saw what was expected: {:?}",
            self.received()
        );
    }
}

/// Adds an endpoint to `app` for `receiver`, for `events` (all when empty); its id and secret.
pub async fn add_endpoint(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let added = webhooks::add_endpoint(
        &app.store,
        &app.config().secret_key,
        NewEndpoint {
            url,
            events: &events,
            description: Some("test receiver"),
            allow_private: true,
        },
        app.clock.now(),
    )
    .await
    .expect("endpoint added");
    (added.id, added.secret)
}

/// Waits (up to 10 s) until the newest deliveries to `endpoint` satisfy `done`; returns them.
/// The receiver sees an attempt before the worker records its outcome, so tests wait for it.
pub async fn deliveries_until(
    store: &portcullis::store::Store,
    endpoint: &str,
    done: impl Fn(&[DeliveryRow]) -> bool,
) -> Vec<DeliveryRow> {
    let mut deliveries = Vec::new();
    for _ in 0..100 {
        deliveries = store
            .recent_deliveries(endpoint, 10)
            .await
            .expect("deliveries");
        if done(&deliveries) {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the deliveries never reached the expected state: {deliveries:?}");
}

/// Restarts `app` allowing webhooks to loopback, where the test receivers listen.
pub async fn allowing_loopback(mut app: TestApp) -> TestApp {
    app.restart_with(|raw| raw.webhook_allow_private = true)
        .await;
    app
}

async fn user_created_events(app: &TestApp) -> Vec<Value> {
    app.store
        .events_of_type("user.created")
        .await
        .expect("events")
        .into_iter()
        .map(|(_, document)| serde_json::from_str(&document).expect("JSON document"))
        .collect()
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

async fn each_way_of_creating_an_account_writes_one_user_created_event_of_one_shape(b: TestApp) {
    let (a, b) = with_google(b).await;
    let on_page = unique_email();
    assert_eq!(
        b.signup(&on_page, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let by_api = unique_email();
    let answer = b
        .fresh_client()
        .post(b.at("/api/v1/signup"))
        .json(&json!({"email": by_api, "password": PASSWORD}))
        .send()
        .await
        .expect("API sign-up");
    assert_eq!(answer.status(), StatusCode::CREATED);
    let upstream = upstream_person(&a).await;
    b.logout().await;
    let back = google_sign_in(&a, &b, "", &upstream).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);

    let events = user_created_events(&b).await;
    assert_eq!(events.len(), 3, "one event per account: {events:?}");
    for (event, (email, via)) in events.iter().zip([
        (&on_page, "sign_up"),
        (&by_api, "sign_up"),
        (&upstream, "upstream"),
    ]) {
        let user = b
            .store
            .find_user_by_email(email)
            .await
            .unwrap()
            .expect("the account");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "io.portcullis.user.created");
        assert_eq!(event["source"], b.url.as_str());
        assert_eq!(event["subject"], user.id.as_str());
        assert_eq!(event["data"]["user_id"], user.id.as_str());
        assert_eq!(event["data"]["email"], email.as_str());
        assert_eq!(event["data"]["via"], via);
        assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
        assert!(
            event["time"].as_str().unwrap().ends_with('Z'),
            "RFC 3339 UTC"
        );
        assert_eq!(keys(event), keys(&events[0]), "one shape");
        assert_eq!(keys(&event["data"]), keys(&events[0]["data"]), "one shape");
        let text = event.to_string();
        assert!(
            !text.contains("argon2") && !text.contains(PASSWORD),
            "no password material"
        );
    }
    assert_eq!(
        events[2]["data"]["email_verified"], true,
        "the provider vouched"
    );
}

async fn parallel_sign_ups_of_one_address_write_one_account_and_one_event(app: TestApp) {
    let email = unique_email();
    let clients: Vec<reqwest::Client> = (0..8).map(|_| app.fresh_client()).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let url = app.at("/api/v1/signup");
    let answers = futures::future::join_all(clients.iter().map(|client| {
        let barrier = barrier.clone();
        let email = email.clone();
        let url = url.clone();
        async move {
            let request = client
                .post(url)
                .json(&json!({"email": email, "password": PASSWORD}));
            barrier.wait().await;
            request.send().await.expect("sign-up").status()
        }
    }))
    .await;
    let created = answers
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "one account: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|s| *s == StatusCode::CREATED || s.is_client_error())
    );
    // The refused ones rolled back their transaction, their event with it.
    assert_eq!(user_created_events(&app).await.len(), 1);
}

async fn webhooks_are_signed_retried_after_a_500_and_keep_their_id(app: TestApp) {
    let app = allowing_loopback(app).await;
    let receiver = Receiver::start(2, Duration::ZERO).await;
    let (endpoint, secret) = add_endpoint(&app, &receiver.url, &[]).await;
    let email = unique_email();
    assert_eq!(
        app.signup(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    let received = receiver
        .wait_until(|r| r.iter().any(|r| r.status == 204))
        .await;
    assert_eq!(
        received.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 204],
        "tried again after each 500, then no more"
    );
    let verifier = Webhook::new(&secret).expect("whsec_ secret");
    for attempt in &received {
        verifier
            .verify(attempt.body.as_bytes(), &attempt.headers)
            .expect("a valid Standard Webhooks signature");
        assert_eq!(
            attempt.id(),
            received[0].id(),
            "the same id on every attempt"
        );
        assert_eq!(
            attempt.body, received[0].body,
            "the same body on every attempt"
        );
        assert_eq!(
            attempt.headers["content-type"],
            "application/cloudevents+json"
        );
    }
    let event = received[0].event();
    assert_eq!(
        event["id"],
        received[0].id().as_str(),
        "webhook-id is the CloudEvent id"
    );
    assert_eq!(event["data"]["email"], email.as_str());
    // A receiver de-duplicating by id keeps one event.
    let mut ids: Vec<String> = received.iter().map(Received::id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 1);
    // A body changed on the way fails the check.
    let tampered = received[0].body.replace(&email, "someone@else.example");
    assert!(
        verifier
            .verify(tampered.as_bytes(), &received[0].headers)
            .is_err()
    );

    let deliveries = deliveries_until(&app.store, &endpoint, |d| {
        d.iter().all(|d| d.state != "pending")
    })
    .await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].state, "delivered");
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[0].last_status, Some(204));
}

async fn an_endpoint_gets_only_the_types_it_asked_for(app: TestApp) {
    let app = allowing_loopback(app).await;
    let wanted = Receiver::start(0, Duration::ZERO).await;
    let other = Receiver::start(0, Duration::ZERO).await;
    let (_, _) = add_endpoint(&app, &wanted.url, &["user.created", "user.deleted"]).await;
    let (other_id, _) = add_endpoint(&app, &other.url, &["user.deleted"]).await;
    assert_eq!(
        app.signup(&unique_email(), PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let received = wanted.wait_until(|r| !r.is_empty()).await;
    assert_eq!(received[0].event()["type"], "io.portcullis.user.created");
    // Deliveries are chosen in the transaction: nothing was queued for the other endpoint.
    assert!(
        app.store
            .recent_deliveries(&other_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(other.received().is_empty());
    // An unknown type is refused when the endpoint is added.
    let refused = webhooks::add_endpoint(
        &app.store,
        &app.config().secret_key,
        NewEndpoint {
            url: &other.url,
            events: &["user.exploded".to_string()],
            description: None,
            allow_private: true,
        },
        app.clock.now(),
    )
    .await;
    let error = refused.err().expect("refused").to_string();
    assert!(
        error.contains("user.exploded") && error.contains("user.created"),
        "{error}"
    );
}

async fn webhooks_reach_no_private_address_unless_allowed(app: TestApp) {
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let key = app.config().secret_key;
    let add = |url: String| {
        let store = app.store.clone();
        let key = key.clone();
        let now = app.clock.now();
        async move {
            webhooks::add_endpoint(
                &store,
                &key,
                NewEndpoint {
                    url: &url,
                    events: &[],
                    description: None,
                    allow_private: false,
                },
                now,
            )
            .await
            .map(|added| added.id)
            .map_err(|e| e.to_string())
        }
    };
    let port = receiver.url.split(':').nth(2).unwrap().to_string();
    for url in [
        format!("http://127.0.0.1:{port}"),
        "https://10.0.0.8/hook".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://[::1]/hook".to_string(),
        "https://[::ffff:192.168.1.1]/hook".to_string(),
    ] {
        let error = add(url.clone()).await.expect_err(&url);
        assert!(
            error.contains("PORTCULLIS_WEBHOOK_ALLOW_PRIVATE"),
            "{url}: {error}"
        );
    }
    for url in [
        "http://example.com/hook",
        "ftp://example.com/hook",
        "https://user:secret@example.com/hook",
        "not a url",
    ] {
        let error = add(url.to_string()).await.expect_err(url);
        assert!(error.contains("https://"), "{url}: {error}");
    }
    // A host name is allowed, but it resolves to loopback at delivery: refused there.
    let endpoint = add(receiver.url.clone()).await.expect("localhost by name");
    assert_eq!(
        app.signup(&unique_email(), PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let deliveries = deliveries_until(&app.store, &endpoint, |d| {
        d.first().is_some_and(|d| d.last_error.is_some())
    })
    .await;
    let last_error = deliveries[0].last_error.clone().unwrap_or_default();
    assert!(last_error.contains("private"), "{last_error}");
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

async fn a_subjects_events_arrive_in_order_even_when_the_first_is_retried(app: TestApp) {
    use portcullis::events::{EventType, Events};
    let app = allowing_loopback(app).await;
    let receiver = Receiver::start(1, Duration::ZERO).await;
    add_endpoint(&app, &receiver.url, &[]).await;
    let email = unique_email();
    assert_eq!(
        app.signup(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let user = app.store.find_user_by_email(&email).await.unwrap().unwrap();
    // Three more changes to the account while its first event waits for its retry.
    let events = Events::from_config(&app.config(), app.clock.clone());
    let now = app.clock.now();
    app.store
        .set_user_disabled(
            &user.id,
            true,
            now,
            events.about_user(EventType::UserDisabled, &user),
        )
        .await
        .unwrap();
    app.store
        .set_user_disabled(
            &user.id,
            false,
            now,
            events.about_user(EventType::UserEnabled, &user),
        )
        .await
        .unwrap();
    app.store
        .delete_user(&user.id, events.about_user(EventType::UserDeleted, &user))
        .await
        .unwrap();
    let received = receiver.wait_until(|r| r.len() >= 5).await;
    let seen: Vec<(String, u16)> = received
        .iter()
        .map(|r| (r.event()["type"].as_str().unwrap().to_string(), r.status))
        .collect();
    let expected: Vec<(String, u16)> = [
        ("user.created", 500),
        ("user.created", 204),
        ("user.disabled", 204),
        ("user.enabled", 204),
        ("user.deleted", 204),
    ]
    .iter()
    .map(|(t, s)| (format!("io.portcullis.{t}"), *s))
    .collect();
    assert_eq!(
        seen, expected,
        "in the order of the changes, none overtaking the retry"
    );
    for r in &received {
        assert_eq!(r.event()["subject"], user.id.as_str());
    }
}

async fn an_admin_sees_a_failed_delivery_and_sends_it_again(mut app: TestApp) {
    // Deliveries are given up one second after their event: the first retry is the last.
    app.restart_with(|raw| {
        raw.webhook_allow_private = true;
        raw.event_max_age = Duration::from_secs(1);
    })
    .await;
    crate::admin::admin(&app).await;
    let receiver = Receiver::start(2, Duration::ZERO).await;
    let (endpoint, _) = add_endpoint(&app, &receiver.url, &["user.created"]).await;
    let answer = app
        .fresh_client()
        .post(app.at("/api/v1/signup"))
        .json(&json!({"email": unique_email(), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let deliveries = deliveries_until(&app.store, &endpoint, |d| {
        d.first().is_some_and(|d| d.state == "failed")
    })
    .await;
    let failed = &deliveries[0];
    assert_eq!(failed.last_status, Some(500));

    let page = app.page("/admin/webhooks").await;
    assert!(page.contains(&receiver.url) && page.contains("user.created"));
    assert!(
        page.contains("failed") && page.contains("answered 500"),
        "{page}"
    );
    let action = format!("/admin/webhooks/{endpoint}/deliveries/{}/retry", failed.id);
    assert!(page.contains(&action), "a retry button");
    let csrf = crate::helpers::hidden_value(&page, "csrf_token").unwrap();
    let retried = app.post_form(&action, &[("csrf_token", &csrf)]).await;
    assert_eq!(retried.status(), StatusCode::SEE_OTHER);
    let received = receiver
        .wait_until(|r| r.iter().any(|r| r.status == 204))
        .await;
    assert_eq!(received.len(), 3);
    assert_eq!(
        received[2].id(),
        received[0].id(),
        "the same event, the same id"
    );
    // Another endpoint's delivery id does not retry through this one.
    let wrong = format!("/admin/webhooks/wh_nope/deliveries/{}/retry", failed.id);
    assert_eq!(
        app.post_form(&wrong, &[("csrf_token", &csrf)])
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let audit = app
        .store
        .audit_events(&Default::default(), 5)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.event == "admin.webhook_delivery_retried")
    );
}

/// The documents of the events of `kind`, oldest first.
async fn events_of(app: &TestApp, kind: &str) -> Vec<Value> {
    app.store
        .events_of_type(kind)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, document)| serde_json::from_str(&document).unwrap())
        .collect()
}

async fn changes_to_accounts_clients_and_keys_each_write_their_event(app: TestApp) {
    let email = crate::helpers::signed_up(&app).await;
    let user = app.store.find_user_by_email(&email).await.unwrap().unwrap();
    crate::two_factor::enrol_totp(&app).await;
    let csrf = app.csrf_token("/account/password").await;
    let changed = app
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "a-new-long-passphrase-9"),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    let (status, tokens) = crate::metrics::api_login(&app, &email, "a-new-long-passphrase-9").await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let first = tokens["mfa_token"].as_str();
    assert!(first.is_some(), "the second factor is asked: {tokens}");

    let (client_id, _) = crate::helpers::machine_client(&app, "reports").await;
    app.run_cli(&["client", "rotate-secret", &client_id]).await;
    app.run_cli(&["client", "delete", &client_id]).await;
    let rotated = app.run_cli(&["keys", "rotate", "--delay", "10s"]).await;
    let kid = rotated[0]["kid"].as_str().unwrap().to_string();

    let one = |events: Vec<Value>, what: &str| -> Value {
        assert_eq!(events.len(), 1, "one {what}: {events:?}");
        events.into_iter().next().unwrap()
    };
    let added = one(events_of(&app, "second_factor.added").await, "factor added");
    assert_eq!(added["subject"], user.id.as_str());
    assert_eq!(added["data"]["method"], "totp");
    let password = one(events_of(&app, "password.changed").await, "password change");
    assert_eq!(password["data"]["email"], email.as_str());
    for kind in ["client.created", "client.deleted"] {
        let event = one(events_of(&app, kind).await, kind);
        assert_eq!(event["subject"], client_id.as_str());
    }
    let rotation = one(events_of(&app, "client.changed").await, "secret rotation");
    assert_eq!(rotation["data"]["secret_rotated"], true);
    let key = one(events_of(&app, "signing_key.rotated").await, "key rotation");
    assert_eq!(key["data"]["kid"], kid.as_str());
    for document in [added, password, rotation, key] {
        let text = document.to_string();
        assert!(
            !text.contains("secret\":\"") && !text.contains("whsec_") && !text.contains("$argon2")
        );
    }
}

async fn sign_in_events_are_written_only_when_asked_for(mut app: TestApp) {
    let email = crate::helpers::signed_up(&app).await;
    app.logout().await;
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(
        events_of(&app, "sign_in.succeeded").await.is_empty(),
        "off by default"
    );
    app.restart_with(|raw| raw.sign_in_events = true).await;
    app.logout().await;
    assert!(
        app.login(&email, "not-the-password")
            .await
            .status()
            .is_client_error()
    );
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let failed = events_of(&app, "sign_in.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["email"], email.as_str());
    let succeeded = events_of(&app, "sign_in.succeeded").await;
    assert_eq!(succeeded.len(), 1);
    let user = app.store.find_user_by_email(&email).await.unwrap().unwrap();
    assert_eq!(succeeded[0]["subject"], user.id.as_str());
}

async fn an_admin_granting_a_role_writes_user_updated_once(app: TestApp) {
    let email = crate::helpers::signed_up(&app).await;
    let user = app.store.find_user_by_email(&email).await.unwrap().unwrap();
    app.logout().await;
    crate::admin::admin(&app).await;
    let page = format!("/admin/users/{}", user.id);
    for _ in 0..2 {
        let csrf = app.csrf_token(&page).await;
        let granted = app
            .post_form(
                &format!("{page}/roles-add"),
                &[("csrf_token", &csrf), ("role", "editor")],
            )
            .await;
        assert_eq!(granted.status(), StatusCode::SEE_OTHER);
    }
    let updated = events_of(&app, "user.updated").await;
    assert_eq!(
        updated.len(),
        1,
        "the second grant changed nothing: {updated:?}"
    );
    assert_eq!(updated[0]["subject"], user.id.as_str());
    assert_eq!(updated[0]["data"]["role_added"], "editor");
}

/// `portcullis webhook ARGS…` with webhooks to loopback allowed; stdout as JSON lines.
async fn webhook_cli(app: &TestApp, args: &[&str]) -> (bool, Vec<Value>, String) {
    let output = app
        .command()
        .env("PORTCULLIS_WEBHOOK_ALLOW_PRIVATE", "true")
        .arg("webhook")
        .args(args)
        .output()
        .await
        .expect("run portcullis");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON output"))
        .collect();
    (
        output.status.success(),
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn the_webhook_commands_add_list_test_rotate_and_remove(app: TestApp) {
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let (ok, out, err) = webhook_cli(
        &app,
        &[
            "add",
            "--url",
            &receiver.url,
            "--events",
            "user.created,user.deleted",
            "--description",
            "CRM sync",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let id = out[0]["id"].as_str().unwrap().to_string();
    let first_secret = out[0]["secret"].as_str().unwrap().to_string();
    assert!(first_secret.starts_with("whsec_"));

    let (_, listed, _) = webhook_cli(&app, &["list"]).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["events"], json!(["user.created", "user.deleted"]));
    assert_eq!(listed[0]["description"], "CRM sync");
    assert!(
        !listed[0].to_string().contains("whsec_"),
        "list shows no secret"
    );

    let (ok, out, err) = webhook_cli(&app, &["test", &id]).await;
    assert!(ok, "{err}");
    assert_eq!(out[0]["status"], 204);
    let test = receiver.wait_until(|r| r.len() == 1).await;
    Webhook::new(&first_secret)
        .unwrap()
        .verify(test[0].body.as_bytes(), &test[0].headers)
        .expect("signed with the secret");
    assert_eq!(test[0].event()["type"], "io.portcullis.webhook.test");

    // After a rotation both secrets sign, so receivers can switch without losing events.
    let (ok, out, err) = webhook_cli(&app, &["rotate-secret", &id]).await;
    assert!(ok, "{err}");
    let second_secret = out[0]["secret"].as_str().unwrap().to_string();
    assert_ne!(second_secret, first_secret);
    let (ok, _, err) = webhook_cli(&app, &["test", &id]).await;
    assert!(ok, "{err}");
    let tests = receiver.wait_until(|r| r.len() == 2).await;
    for secret in [&first_secret, &second_secret] {
        Webhook::new(secret)
            .unwrap()
            .verify(tests[1].body.as_bytes(), &tests[1].headers)
            .expect("both secrets sign during the rotation");
    }

    let (ok, _, err) = webhook_cli(&app, &["remove", &id]).await;
    assert!(ok, "{err}");
    let (_, listed, _) = webhook_cli(&app, &["list"]).await;
    assert!(listed.is_empty());
    let (ok, _, err) = webhook_cli(&app, &["remove", &id]).await;
    assert!(!ok && err.contains("no webhook endpoint"), "{err}");
    let (ok, _, err) = webhook_cli(&app, &["add", "--url", "http://example.com/x"]).await;
    assert!(!ok && err.contains("https://"), "{err}");
    let audit = app
        .store
        .audit_events(&Default::default(), 20)
        .await
        .unwrap();
    for event in [
        "cli.webhook_added",
        "cli.webhook_secret_rotated",
        "cli.webhook_removed",
    ] {
        assert!(
            audit.iter().any(|e| e.event == event),
            "{event} in the audit log"
        );
    }
}

/// The NATS server of the machine (`PORTCULLIS_TEST_NATS_URL`); under `CI=true` it must be set.
fn nats_url() -> Option<String> {
    let url = std::env::var("PORTCULLIS_TEST_NATS_URL").ok();
    if url.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but PORTCULLIS_TEST_NATS_URL is not set");
    }
    url
}

async fn jetstream_receives_each_event_under_its_id(mut app: TestApp) {
    use async_nats::jetstream::{self, consumer};
    use futures::StreamExt;
    let Some(url) = nats_url() else {
        eprintln!("PORTCULLIS_TEST_NATS_URL is not set: JetStream not tested");
        return;
    };
    let nats = url.clone();
    app.restart_with(|raw| raw.nats_url = Some(nats)).await;
    let client = async_nats::connect(&url).await.expect("NATS");
    let context = jetstream::new(client);
    let stream = context
        .get_or_create_stream(jetstream::stream::Config {
            name: "PORTCULLIS_EVENTS".into(),
            subjects: vec!["portcullis.events.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::New,
            filter_subject: "portcullis.events.user.created".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let email = unique_email();
    assert_eq!(
        app.signup(&email, PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let (event_id, _) = app
        .store
        .events_of_type("user.created")
        .await
        .unwrap()
        .pop()
        .expect("the event");

    let mut messages = consumer.messages().await.expect("messages");
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(message) = messages.next().await {
            let message = message.expect("message");
            message.ack().await.expect("ack");
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string());
            if id.as_deref() == Some(event_id.as_str()) {
                return message;
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("the event reached JetStream");
    let event: Value = serde_json::from_slice(&found.payload).expect("a CloudEvent");
    assert_eq!(event["id"], event_id.as_str());
    assert_eq!(event["data"]["email"], email.as_str());
    assert_eq!(found.subject.as_str(), "portcullis.events.user.created");
    // A redelivery under the same id is dropped by JetStream's de-duplication.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", event_id.as_str());
    let ack = context
        .publish_with_headers(
            "portcullis.events.user.created",
            headers,
            found.payload.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate, "the same id is a duplicate");
}

#[tokio::test]
async fn sqlite_a_server_killed_mid_delivery_delivers_every_event_after_its_restart() {
    killed_mid_delivery(None).await;
}

#[tokio::test]
async fn postgres_a_server_killed_mid_delivery_delivers_every_event_after_its_restart() {
    let Some(admin) = std::env::var("PORTCULLIS_TEST_POSTGRES_URL").ok() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set PORTCULLIS_TEST_POSTGRES_URL"
        );
        return;
    };
    let pg = crate::helpers::PgDatabase::create(&admin).await;
    killed_mid_delivery(Some(pg.url.clone())).await;
}

/// The real binary, with events in flight to a slow receiver, is killed with SIGKILL and
/// started again: every event arrives, with the id it had (at least once).
async fn killed_mid_delivery(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::helpers::random_secret_key();
    let mut env = vec![
        ("PORTCULLIS_SECRET_KEY", key.as_str()),
        ("PORTCULLIS_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("PORTCULLIS_NODE_NAME", "node-a"),
        ("RUST_LOG", "info"),
    ];
    if let Some(url) = &database_url {
        env.push(("PORTCULLIS_DATABASE_URL", url));
    }
    let receiver = Receiver::start(0, Duration::from_secs(4)).await;
    let (mut server, url) = crate::helpers::serve_binary(dir.path(), &env).await;
    let added = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .envs(env.iter().copied())
        .args(["webhook", "add", "--url", &receiver.url])
        .output()
        .await
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let answer = http
            .post(format!("{url}/api/v1/signup"))
            .json(&json!({"email": unique_email(), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
    // Each account is its own subject, so all five are in flight at once.
    for _ in 0..100 {
        if receiver.arrived() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.arrived(), 5, "five deliveries in flight");
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let store = portcullis::store::Store::connect(
        &match &database_url {
            Some(url) => portcullis::config::DatabaseUrl::Postgres(
                portcullis::config::Secret::new(url.as_str()),
            ),
            None => portcullis::config::DatabaseUrl::Sqlite(format!(
                "sqlite://{}",
                dir.path().join("portcullis.db").display()
            )),
        },
        2,
    )
    .await
    .unwrap();
    let endpoint: Value = serde_json::from_slice(&added.stdout).unwrap();
    let endpoint = endpoint["id"].as_str().unwrap();
    let in_flight = store.recent_deliveries(endpoint, 10).await.unwrap();
    assert_eq!(in_flight.len(), 5);
    assert!(
        in_flight
            .iter()
            .all(|d| d.state == "pending" && d.attempts == 0),
        "killed before any delivery was recorded: {in_flight:?}"
    );
    // The receiver finishes the requests the dead server sent; those answers were lost.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let before_restart = receiver.received().len();

    let (_restarted, _) = crate::helpers::serve_binary(dir.path(), &env).await;
    let expected: Vec<String> = store
        .events_of_type("user.created")
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(expected.len(), 5);
    let delivered = receiver
        .wait_until(|r| {
            expected.iter().all(|id| {
                r[before_restart.min(r.len())..]
                    .iter()
                    .any(|r| r.status == 204 && &r.id() == id)
            })
        })
        .await;
    for attempt in &delivered {
        assert!(
            expected.contains(&attempt.id()),
            "only these events, by their ids"
        );
    }
    // And the restarted server recorded them as delivered.
    let states: Vec<String> = deliveries_until(&store, endpoint, |d| {
        d.iter().all(|d| d.state == "delivered")
    })
    .await
    .into_iter()
    .map(|d| d.state)
    .collect();
    assert_eq!(states, ["delivered"; 5]);
    store.close().await;
}
