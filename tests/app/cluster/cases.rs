//! What a cluster shares: one signing key, sessions, tokens, throttling, and changes that every
//! node applies at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Barrier;

use super::proxy::SERVED_BY;
use super::{Cluster, PASSWORD, Shared, time_until};

/// Within this, another node must refuse what one node ended. The token-check cache keeps an
/// answer for 1 s and the client cache for 5 s, so passing these bounds takes the change bus.
const TOKEN_CHANGE_SEEN_WITHIN: Duration = Duration::from_millis(600);
const CLIENT_CHANGE_SEEN_WITHIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn three_nodes_behind_a_balancer_act_as_one_server() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    one_signing_key_for_the_cluster(&cluster).await;
    a_browser_session_holds_on_every_node(&cluster).await;
    tokens_from_any_node_verify_at_every_node(&cluster).await;
    a_revocation_on_one_node_is_refused_at_once_on_the_others(&cluster).await;
    a_sign_out_on_one_node_ends_the_family_on_the_others(&cluster).await;
    a_client_deleted_on_one_node_is_refused_on_all(&cluster).await;
    wrong_passwords_spread_over_the_nodes_share_one_limit(&cluster).await;
}

async fn one_signing_key_for_the_cluster(cluster: &Cluster) {
    let mut published = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        published.push(cluster.published_kids(i).await);
        let ready: serde_json::Value = cluster
            .remote
            .http
            .get(format!("{}/ready", node.url))
            .send()
            .await
            .expect("GET /ready")
            .json()
            .await
            .expect("json");
        assert_eq!(ready["node"], format!("node-{i}"), "{ready}");
    }
    assert_eq!(published[0].len(), 1, "one key: {published:?}");
    assert!(
        published.iter().all(|kids| *kids == published[0]),
        "every node publishes the same key: {published:?}"
    );
}

async fn a_browser_session_holds_on_every_node(cluster: &Cluster) {
    let email = cluster.sign_up().await;
    let base = &cluster.proxy.url;
    let browser = cluster.remote.browser_signed_in(base, &email).await;

    let mut served_by = BTreeSet::new();
    for _ in 0..(2 * cluster.nodes.len()) {
        let account = browser
            .get(format!("{base}/account"))
            .send()
            .await
            .expect("GET /account");
        served_by.insert(
            account.headers()[SERVED_BY]
                .to_str()
                .unwrap_or("")
                .to_string(),
        );
        assert_eq!(account.status(), StatusCode::OK, "signed in on every node");
        assert!(account.text().await.expect("page").contains(&email));
    }
    assert_eq!(served_by.len(), cluster.nodes.len(), "{served_by:?}");
}

async fn tokens_from_any_node_verify_at_every_node(cluster: &Cluster) {
    let (id, secret) = cluster.machine_client().await;
    let email = cluster.sign_up().await;
    for signer in &cluster.nodes {
        let client_token = cluster.remote.client_token(&signer.url, &id, &secret).await;
        let (person_token, _) = cluster.remote.api_sign_in(&signer.url, &email).await;
        for i in 0..cluster.nodes.len() {
            for token in [&client_token, &person_token] {
                cluster.verify_with_jwks_of(i, token).await;
            }
        }
        for checker in &cluster.nodes {
            assert!(
                cluster
                    .remote
                    .active_at(&checker.url, &id, &secret, &client_token)
                    .await,
                "a client token from {} at {}",
                signer.url,
                checker.url
            );
            assert_eq!(
                cluster.remote.whoami(&checker.url, &person_token).await,
                StatusCode::OK,
                "a person's token from {} at {}",
                signer.url,
                checker.url
            );
        }
    }
}

async fn a_revocation_on_one_node_is_refused_at_once_on_the_others(cluster: &Cluster) {
    let (id, secret) = cluster.machine_client().await;
    let [writer, others @ ..] = cluster.nodes.as_slice() else {
        unreachable!("a cluster has nodes");
    };
    let token = cluster.remote.client_token(&writer.url, &id, &secret).await;
    // The other nodes have just checked it: their caches hold "active".
    for other in others {
        assert!(
            cluster
                .remote
                .active_at(&other.url, &id, &secret, &token)
                .await
        );
    }
    let since = Instant::now();
    let revoked = cluster
        .remote
        .http
        .post(format!("{}/oauth/revoke", writer.url))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("POST revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    for other in others {
        let seen = time_until(since, TOKEN_CHANGE_SEEN_WITHIN, || async {
            !cluster
                .remote
                .active_at(&other.url, &id, &secret, &token)
                .await
        })
        .await;
        assert!(seen.is_some(), "{} refuses the revoked token", other.url);
    }
}

async fn a_sign_out_on_one_node_ends_the_family_on_the_others(cluster: &Cluster) {
    let email = cluster.sign_up().await;
    let [writer, others @ ..] = cluster.nodes.as_slice() else {
        unreachable!("a cluster has nodes");
    };
    let (access, refresh) = cluster.remote.api_sign_in(&writer.url, &email).await;
    for other in others {
        assert_eq!(
            cluster.remote.whoami(&other.url, &access).await,
            StatusCode::OK
        );
    }
    let since = Instant::now();
    let signed_out = cluster
        .remote
        .http
        .post(format!("{}/api/v1/logout", writer.url))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("POST logout");
    assert!(signed_out.status().is_success(), "{}", signed_out.status());
    for other in others {
        let seen = time_until(since, TOKEN_CHANGE_SEEN_WITHIN, || async {
            cluster.remote.whoami(&other.url, &access).await == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(seen.is_some(), "{} refuses the signed-out token", other.url);
    }
}

async fn a_client_deleted_on_one_node_is_refused_on_all(cluster: &Cluster) {
    let (id, secret) = cluster.machine_client().await;
    // Every node has looked the client up (and caches it).
    for node in &cluster.nodes {
        cluster.remote.client_token(&node.url, &id, &secret).await;
    }
    let since = Instant::now();
    cluster.cli(&["client", "delete", &id]).await;
    for node in &cluster.nodes {
        let seen = time_until(since, CLIENT_CHANGE_SEEN_WITHIN, || async {
            cluster
                .remote
                .http
                .post(format!("{}/oauth/token", node.url))
                .basic_auth(&id, Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("POST token")
                .status()
                == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(seen.is_some(), "{} refuses the deleted client", node.url);
    }
}

async fn wrong_passwords_spread_over_the_nodes_share_one_limit(cluster: &Cluster) {
    const PARALLEL: usize = 24;
    let email = cluster.sign_up().await;
    let barrier = Arc::new(Barrier::new(PARALLEL));
    let mut tasks = Vec::new();
    for _ in 0..PARALLEL {
        let (barrier, http, email) = (barrier.clone(), cluster.remote.http.clone(), email.clone());
        let url = format!("{}/api/v1/login", cluster.proxy.url);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let answer = http
                .post(url)
                .json(&json!({ "email": email, "password": "wrong-password-123" }))
                .send()
                .await
                .expect("POST login");
            (
                answer.status(),
                answer.headers()[SERVED_BY]
                    .to_str()
                    .unwrap_or("")
                    .to_string(),
            )
        }));
    }
    let mut statuses = Vec::new();
    let mut served_by = BTreeSet::new();
    for task in tasks {
        let (status, node) = task.await.expect("task");
        statuses.push(status);
        served_by.insert(node);
    }
    assert_eq!(
        served_by.len(),
        cluster.nodes.len(),
        "spread over every node"
    );
    let evaluated = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(
        evaluated, 5,
        "the account limit, once for the cluster: {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS)
    );
    // The right password is refused on every node while the account is paused.
    for node in &cluster.nodes {
        let answer = cluster
            .remote
            .http
            .post(format!("{}/api/v1/login", node.url))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("POST login");
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

/// Without Redis, Postgres `LISTEN/NOTIFY` carries the changes and holds the sessions.
#[tokio::test]
async fn without_redis_postgres_carries_the_changes() {
    let Some(cluster) = Cluster::start_on(2, Shared::PostgresOnly).await else {
        return;
    };
    one_signing_key_for_the_cluster(&cluster).await;
    a_browser_session_holds_on_every_node(&cluster).await;
    a_revocation_on_one_node_is_refused_at_once_on_the_others(&cluster).await;
    a_sign_out_on_one_node_ends_the_family_on_the_others(&cluster).await;
    a_client_deleted_on_one_node_is_refused_on_all(&cluster).await;
}

#[tokio::test]
async fn keys_rotated_with_the_cli_reach_every_running_node() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let (id, secret) = cluster.machine_client().await;
    let old_kids = cluster.published_kids(0).await;
    let mut old_tokens = Vec::new();
    for node in &cluster.nodes {
        old_tokens.push(cluster.remote.client_token(&node.url, &id, &secret).await);
    }

    let since = Instant::now();
    let rotated = cluster.cli(&["keys", "rotate", "--delay", "10s"]).await;
    let cli_took = since.elapsed();
    let new_kid = rotated["kid"].as_str().expect("kid").to_string();
    let activates_at = rotated["activates_at"].as_i64().expect("activates_at");
    for i in 0..cluster.nodes.len() {
        let seen = time_until(since, Duration::from_secs(2), || async {
            cluster.published_kids(i).await.contains(&new_kid)
        })
        .await;
        let seen = seen.unwrap_or_else(|| panic!("node {i} publishes the new key within 2 s"));
        eprintln!(
            "node {i} published the new key {} ms after `keys rotate` started ({} ms after it \
             exited)",
            seen.as_millis(),
            seen.saturating_sub(cli_took).as_millis()
        );
    }

    // Once active, every node signs with the new key, and every token verifies everywhere.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    tokio::time::sleep(Duration::from_secs((activates_at - now + 1).max(0) as u64)).await;
    let mut new_tokens = Vec::new();
    for node in &cluster.nodes {
        let token = cluster.remote.client_token(&node.url, &id, &secret).await;
        let kid = jsonwebtoken::decode_header(&token).expect("header").kid;
        assert_eq!(
            kid.as_deref(),
            Some(new_kid.as_str()),
            "{} signs with it",
            node.url
        );
        new_tokens.push(token);
    }
    for (i, checker) in cluster.nodes.iter().enumerate() {
        let kids = cluster.published_kids(i).await;
        assert!(
            old_kids.iter().all(|kid| kids.contains(kid)),
            "the old key stays published"
        );
        for token in old_tokens.iter().chain(&new_tokens) {
            cluster.verify_with_jwks_of(i, token).await;
            assert!(
                cluster
                    .remote
                    .active_at(&checker.url, &id, &secret, token)
                    .await
            );
        }
    }
}

/// The admin overview reads what every node counted: sign-ins on one node and a failure on
/// another show on the overview of either (each node adds its counts every 10 s).
#[tokio::test]
async fn the_admin_overview_counts_what_every_node_saw() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (first, second) = (&cluster.nodes[0].url, &cluster.nodes[1].url);
    let person = cluster.sign_up().await;
    cluster.remote.api_sign_in(first, &person).await;
    let wrong = cluster
        .remote
        .http
        .post(format!("{second}/api/v1/login"))
        .json(&serde_json::json!({ "email": person, "password": "not it" }))
        .send()
        .await
        .expect("POST login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let admin = cluster.sign_up().await;
    cluster.grant_admin(&admin).await;
    let browser = cluster.remote.browser_signed_in(second, &admin).await;

    // The person's sign-in was counted on the first node, the admin's and the failure on the
    // second: the second node's overview has all three once the first has written its counts.
    let wanted = "2 signed in, 1 failed.";
    let mut seen = String::new();
    for _ in 0..60 {
        let overview = browser
            .get(format!("{second}/admin"))
            .send()
            .await
            .expect("GET /admin");
        assert_eq!(overview.status(), StatusCode::OK);
        seen = overview.text().await.expect("page");
        if seen.contains(wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        seen.contains(wanted),
        "within 30 s the overview reads {wanted:?}:\n{seen}"
    );
    // And the first node shows the same.
    let elsewhere = browser
        .get(format!("{first}/admin"))
        .send()
        .await
        .expect("GET /admin");
    assert!(elsewhere.text().await.expect("page").contains(wanted));
}

/// The delivery workers of all nodes share one queue: the events of sign-ups through the
/// balancer, each refused once by the receiver, reach it on their retry exactly once, whichever
/// node's worker took them (`FOR UPDATE SKIP LOCKED` claims; the retries of all of them come due
/// together, so the nodes' workers compete for the same rows).
#[tokio::test]
async fn the_nodes_share_the_event_queue_and_deliver_each_event_once() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    const SIGN_UPS: usize = 15;
    let receiver = crate::events::Receiver::start(SIGN_UPS, Duration::ZERO).await;
    cluster
        .cli(&[
            "webhook",
            "add",
            "--url",
            &receiver.url,
            "--events",
            "user.created",
        ])
        .await;
    for _ in 0..SIGN_UPS {
        cluster.sign_up().await;
    }
    let received = receiver
        .wait_until(|r| r.iter().filter(|r| r.status == 204).count() >= SIGN_UPS)
        .await;
    // A moment more for any second delivery to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered: Vec<String> = receiver
        .received()
        .iter()
        .filter(|r| r.status == 204)
        .map(|r| r.id())
        .collect();
    let mut distinct = delivered.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), SIGN_UPS, "every event arrived");
    assert_eq!(delivered.len(), SIGN_UPS, "none twice: {delivered:?}");
    assert!(received.iter().filter(|r| r.status == 500).count() >= SIGN_UPS);
}

/// A passkey ceremony lives in the database: begun on one node, it finishes on another, and
/// of the same answer sent to every node at once, one signs in.
#[tokio::test]
async fn a_passkey_ceremony_begun_on_one_node_finishes_on_another_and_only_once() {
    let Some(cluster) = Cluster::start_on_localhost(2).await else {
        return;
    };
    let (one, two) = (&cluster.nodes[0].url, &cluster.nodes[1].url);
    let http = &cluster.remote.http;
    let email = crate::helpers::unique_email();
    assert_eq!(
        cluster.remote.sign_up(one, &email).await.status(),
        StatusCode::CREATED
    );
    let (access, _) = cluster.remote.api_sign_in(one, &email).await;
    let mut device = crate::passkeys::Device::at(&cluster.public_url);

    let begin: serde_json::Value = http
        .post(format!("{one}/api/v1/passkeys/register/begin"))
        .bearer_auth(&access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .expect("begin")
        .json()
        .await
        .expect("json");
    let credential = device.create(&begin);
    let finish = http
        .post(format!("{two}/api/v1/passkeys/register/finish"))
        .bearer_auth(&access)
        .json(&json!({ "ceremony": begin["ceremony"], "name": "Phone", "credential": credential }))
        .send()
        .await
        .expect("finish");
    assert_eq!(finish.status(), StatusCode::OK, "registered across nodes");

    let begin: serde_json::Value = http
        .post(format!("{two}/api/v1/passkeys/login/begin"))
        .json(&json!({}))
        .send()
        .await
        .expect("begin")
        .json()
        .await
        .expect("json");
    let answer = json!({ "ceremony": begin["ceremony"], "credential": device.sign(&begin) });
    let barrier = Arc::new(Barrier::new(12));
    let attempts = (0..12).map(|i| {
        let node = if i % 2 == 0 { one } else { two };
        let (http, answer, barrier) = (http.clone(), answer.clone(), barrier.clone());
        let url = format!("{node}/api/v1/passkeys/login/finish");
        async move {
            barrier.wait().await;
            http.post(url)
                .json(&answer)
                .send()
                .await
                .expect("finish")
                .status()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let signed_in = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(signed_in, 1, "one sign-in from one ceremony: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}
