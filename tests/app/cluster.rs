//! Several nodes of the real binary on one Postgres database and one Redis, started together
//! as an operator starts them behind a load balancer.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::helpers::PgDatabase;

const NODES: usize = 3;

/// The Postgres and Redis the cluster tests need; `None` (skipped with a notice) outside CI.
fn services() -> Option<(String, String)> {
    match (
        std::env::var("PORTCULLIS_TEST_POSTGRES_URL"),
        std::env::var("PORTCULLIS_TEST_REDIS_URL"),
    ) {
        (Ok(pg), Ok(redis)) => Some((pg, redis)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must set PORTCULLIS_TEST_POSTGRES_URL and PORTCULLIS_TEST_REDIS_URL")
        }
        _ => {
            eprintln!("skipped: the cluster tests need Postgres and Redis");
            None
        }
    }
}

struct Node {
    url: String,
    _process: Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The environment every node and the CLI share: one database, one Redis, one secret key.
fn cluster_env(command: &mut Command, database: &str, redis: &str, secret: &str, public: &str) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTCULLIS_DATABASE_URL", database)
        .env("PORTCULLIS_REDIS_URL", redis)
        .env("PORTCULLIS_SECRET_KEY", secret)
        .env("PORTCULLIS_PUBLIC_URL", public)
        .env("RUST_LOG", "warn");
}

async fn start_nodes(database: &str, redis: &str, secret: &str) -> Vec<Node> {
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    // Behind one balancer every node has the same public URL (the issuer).
    let public = format!("http://localhost:{}", ports[0]);
    let mut nodes = Vec::new();
    for port in &ports {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cluster_env(&mut command, database, redis, secret, &public);
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log file");
        command
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        nodes.push(Node {
            url: format!("http://127.0.0.1:{port}"),
            _process: command.spawn().expect("start a node"),
            _dir: dir,
        });
    }
    let client = reqwest::Client::new();
    for node in &nodes {
        let mut ready = false;
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/ready", node.url)).send().await
                && r.status() == StatusCode::OK
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(node._dir.path().join("node.log")).unwrap_or_default();
        assert!(ready, "{} became ready: {log}", node.url);
    }
    nodes
}

#[tokio::test]
async fn nodes_started_together_on_one_database_sign_with_one_key() {
    let Some((pg, redis)) = services() else {
        return;
    };
    let database = PgDatabase::create(&pg).await;
    let secret = crate::helpers::random_secret_key();
    let nodes = start_nodes(&database.url, &redis, &secret).await;
    let client = reqwest::Client::new();

    let mut published = Vec::new();
    for node in &nodes {
        let jwks: Value = client
            .get(format!("{}/oauth/jwks", node.url))
            .send()
            .await
            .expect("GET jwks")
            .json()
            .await
            .expect("json");
        let kids: Vec<String> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_string())
            .collect();
        published.push(kids);
    }
    assert_eq!(
        published[0].len(),
        1,
        "one key for the cluster: {published:?}"
    );
    assert!(
        published.iter().all(|kids| *kids == published[0]),
        "every node publishes the same key: {published:?}"
    );

    // A token signed by one node is active at every other.
    let mut cli = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cluster_env(
        &mut cli,
        &database.url,
        &redis,
        &secret,
        "http://localhost:1",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let out = cli
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .args([
            "client",
            "create",
            "--name",
            "Reports",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "reports",
        ])
        .output()
        .await
        .expect("run portcullis");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    let (id, secret) = (
        created["client_id"].as_str().expect("id"),
        created["client_secret"].as_str().expect("secret"),
    );
    for (i, signer) in nodes.iter().enumerate() {
        let token: Value = client
            .post(format!("{}/oauth/token", signer.url))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("POST token")
            .json()
            .await
            .expect("json");
        let access = token["access_token"].as_str().expect("a token");
        for checker in &nodes {
            let answer: Value = client
                .post(format!("{}/oauth/introspect", checker.url))
                .basic_auth(id, Some(secret))
                .form(&[("token", access)])
                .send()
                .await
                .expect("POST introspect")
                .json()
                .await
                .expect("json");
            assert_eq!(
                answer["active"], true,
                "signed by node {i}, checked at {}",
                checker.url
            );
        }
    }
}
