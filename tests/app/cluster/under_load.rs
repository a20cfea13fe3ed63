//! Nodes that crash or restart while requests keep coming through the balancer, and the
//! propagation measurement `bench/cluster.sh` runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{Cluster, PASSWORD, Shared, quantile, time_until};

/// Requests in flight at once: a bounded load the 2-core CI machine carries beside the tests.
const WORKERS: usize = 4;

#[tokio::test]
async fn a_node_killed_under_load_loses_no_acknowledged_sign_up() {
    let Some(mut cluster) = Cluster::start(3).await else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (stop, http) = (stop.clone(), cluster.remote.http.clone());
        let url = format!("{}/api/v1/signup", cluster.proxy.url);
        workers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failed = 0;
            while !stop.load(Ordering::Acquire) {
                let email = crate::helpers::unique_email();
                let answer = http
                    .post(&url)
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send()
                    .await;
                match answer {
                    Ok(answer) if answer.status() == StatusCode::CREATED => {
                        acknowledged.push(email)
                    }
                    // The requests in flight at the killed node fail; none was acknowledged.
                    _ => failed += 1,
                }
            }
            (acknowledged, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.kill(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for worker in workers {
        let (emails, failures) = worker.await.expect("worker");
        acknowledged.extend(emails);
        failed += failures;
    }
    eprintln!(
        "{} sign-ups acknowledged, {failed} failed when node 1 was killed",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 10,
        "the load ran: {}",
        acknowledged.len()
    );
    assert!(
        failed <= 2 * WORKERS,
        "only requests around the kill fail: {failed}"
    );
    for email in &acknowledged {
        let answer = cluster
            .remote
            .http
            .post(format!("{}/api/v1/login", cluster.proxy.url))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("POST login");
        assert_eq!(answer.status(), StatusCode::OK, "{email} can sign in");
    }
}

#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request() {
    let Some(mut cluster) = Cluster::start(3).await else {
        return;
    };
    let (id, secret) = cluster.machine_client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (stop, http) = (stop.clone(), cluster.remote.http.clone());
        let (base, id, secret) = (cluster.proxy.url.clone(), id.clone(), secret.clone());
        workers.push(tokio::spawn(async move {
            let (mut done, mut failures) = (0usize, Vec::new());
            while !stop.load(Ordering::Acquire) {
                // Pages, tokens and their checks, as relying apps and people use them.
                let answer = match (done + worker) % 3 {
                    0 => http.get(format!("{base}/login")).send().await,
                    1 => {
                        http.post(format!("{base}/oauth/token"))
                            .basic_auth(&id, Some(&secret))
                            .form(&[("grant_type", "client_credentials")])
                            .send()
                            .await
                    }
                    _ => http.get(format!("{base}/oauth/jwks")).send().await,
                };
                match answer {
                    Ok(answer) if answer.status() == StatusCode::OK => {}
                    Ok(answer) => failures.push(format!(
                        "{}: {}",
                        answer.status(),
                        answer.text().await.unwrap_or_default()
                    )),
                    Err(e) => failures.push(e.to_string()),
                }
                done += 1;
            }
            (done, failures)
        }));
    }
    for i in 0..cluster.nodes.len() {
        assert!(
            cluster.terminate(i).await,
            "node {i} exits cleanly on SIGTERM"
        );
        cluster.restart(i).await;
    }
    stop.store(true, Ordering::Release);
    let (mut done, mut failures) = (0, Vec::new());
    for worker in workers {
        let (count, failed) = worker.await.expect("worker");
        done += count;
        failures.extend(failed);
    }
    eprintln!("{done} requests through a rolling restart of every node");
    assert!(done >= 100, "the load ran: {done}");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
}

/// `bench/cluster.sh`: from a revocation on one node to its refusal on another, many times.
#[tokio::test]
#[ignore = "a measurement; bench/cluster.sh runs it"]
async fn measure_cross_node_invalidation() {
    let shared = match std::env::var("BUS").as_deref() {
        Ok("postgres") => Shared::PostgresOnly,
        _ => Shared::PostgresAndRedis,
    };
    let Some(cluster) = Cluster::start_on(2, shared).await else {
        return;
    };
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let (id, secret) = cluster.machine_client().await;
    let (writer, reader) = (&cluster.nodes[0].url, &cluster.nodes[1].url);
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let token = cluster.remote.client_token(writer, &id, &secret).await;
        assert!(cluster.remote.active_at(reader, &id, &secret, &token).await);
        let since = Instant::now();
        cluster
            .remote
            .http
            .post(format!("{writer}/oauth/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .expect("POST revoke");
        let seen = time_until(since, Duration::from_secs(5), || async {
            !cluster.remote.active_at(reader, &id, &secret, &token).await
        })
        .await
        .expect("the other node refuses the token");
        samples.push(seen);
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let bus = match shared {
        Shared::PostgresOnly => "Postgres LISTEN/NOTIFY",
        Shared::PostgresAndRedis => "Redis pub/sub",
    };
    println!(
        "{bus}: cross-node invalidation over {rounds} revocations (from sending the revocation on \
         node A to the first refusal at node B, polled every 2 ms): p50 {:.1} ms, p90 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        ms(quantile(&samples, 0.5)),
        ms(quantile(&samples, 0.9)),
        ms(quantile(&samples, 0.99)),
        ms(samples[samples.len() - 1]),
    );
}
