//! `bench/multi-region.sh`: the figures of two regions, printed (run with `--ignored`, in a
//! release build). Per region: whoami and introspection p50/p99, API sign-in latency; and the
//! time from a revocation's answer in one region until the other refuses the token.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::cases::RelyingApp;
use super::{RegionNode, Regions};
use crate::cluster::{quantile, time_until};
use crate::helpers::unique_email;

fn rounds() -> usize {
    std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200)
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "p50 {:.2?}  p90 {:.2?}  p99 {:.2?}  max {:.2?}  (n={})",
        quantile(samples, 0.5),
        quantile(samples, 0.9),
        quantile(samples, 0.99),
        samples[samples.len() - 1],
        samples.len()
    )
}

#[tokio::test]
#[ignore = "a benchmark: bench/multi-region.sh"]
async fn measure_two_regions() {
    let Some(regions) = Regions::start().await else {
        return;
    };
    let rounds = rounds();
    let app = RelyingApp::register(&regions).await;
    println!(
        "two regions, one-way latency between them {:?}, {rounds} rounds",
        super::one_way()
    );
    for node in [&regions.one, &regions.two] {
        checks_in(&regions, node, &app, rounds).await;
    }
    for (from, to) in [(&regions.one, &regions.two), (&regions.two, &regions.one)] {
        revocations(&regions, from, to, rounds / 4).await;
    }
}

async fn checks_in(regions: &Regions, node: &RegionNode, app: &RelyingApp, rounds: usize) {
    let email = unique_email();
    assert_eq!(
        regions.sign_up_at(node, &email).await.status(),
        StatusCode::CREATED
    );
    let mut sign_ins = Vec::new();
    for _ in 0..rounds.div_ceil(10) {
        let started = Instant::now();
        let answer = regions.api_login_at(node, &email).await;
        assert_eq!(answer.status(), StatusCode::OK);
        sign_ins.push(started.elapsed());
    }
    let (api_token, _) = regions.api_tokens_at(node, &email).await;
    let browser = regions.browser_signed_in(node, &email).await;
    let app_token = app.access_token(regions, node, &browser).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut whoami = Vec::new();
    let mut introspection = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        assert_eq!(regions.whoami_at(node, &api_token).await, StatusCode::OK);
        whoami.push(started.elapsed());
        let started = Instant::now();
        assert!(regions.active_at(node, &app.client(), &app_token).await);
        introspection.push(started.elapsed());
    }
    let region = node.region;
    println!("region {region} whoami:        {}", summary(&mut whoami));
    println!(
        "region {region} introspection: {}",
        summary(&mut introspection)
    );
    println!("region {region} API sign-in:   {}", summary(&mut sign_ins));
}

async fn revocations(regions: &Regions, from: &RegionNode, to: &RegionNode, rounds: usize) {
    let email = unique_email();
    assert_eq!(
        regions.sign_up_at(from, &email).await.status(),
        StatusCode::CREATED
    );
    let mut seen = Vec::new();
    let mut writes = Vec::new();
    for _ in 0..rounds.max(10) {
        let (access, refresh) = regions.api_tokens_at(from, &email).await;
        let active = time_until(Instant::now(), Duration::from_secs(5), || async {
            regions.whoami_at(to, &access).await == StatusCode::OK
        })
        .await;
        assert!(active.is_some());
        let revoking = Instant::now();
        regions.api_logout_at(from, &refresh).await;
        let revoked = Instant::now();
        writes.push(revoked - revoking);
        let refused = time_until(revoked, Duration::from_secs(10), || async {
            regions.whoami_at(to, &access).await == StatusCode::UNAUTHORIZED
        })
        .await
        .expect("refused in the end");
        seen.push(refused);
    }
    println!(
        "revoked in {} → refused in {}: {}",
        from.region,
        to.region,
        summary(&mut seen)
    );
    println!(
        "  (the sign-out itself in {}:  {})",
        from.region,
        summary(&mut writes)
    );
}
