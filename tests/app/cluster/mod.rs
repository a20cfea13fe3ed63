//! Several nodes of the real binary on one Postgres database and one Redis, behind a
//! round-robin balancer, as an operator runs them. CI runs these on Postgres + Redis; elsewhere
//! they are skipped without those services.

mod cases;
mod proxy;
mod under_load;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::helpers::PgDatabase;
use proxy::Proxy;

pub use crate::remote::PASSWORD;
use crate::remote::Remote;

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

/// One `portcullis serve` process with its own port and data directory.
pub struct Node {
    pub url: String,
    port: u16,
    process: Option<Child>,
    dir: tempfile::TempDir,
}

impl Node {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }
}

/// Nodes on one fresh database, one Redis and one secret key, behind a `Proxy` whose URL is
/// the public URL (the issuer) of every node.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub proxy: Proxy,
    /// The balancer's URL, as the nodes' public URL (`localhost` for passkeys).
    pub public_url: String,
    pub remote: Remote,
    database: PgDatabase,
    /// `None`: sessions in Postgres and changes over `LISTEN/NOTIFY`.
    redis: Option<String>,
    secret: String,
}

/// Where the nodes keep sessions and send changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    PostgresAndRedis,
    PostgresOnly,
}

impl Cluster {
    /// `None` when the services are missing outside CI.
    pub async fn start(nodes: usize) -> Option<Self> {
        Self::start_on(nodes, Shared::PostgresAndRedis).await
    }

    pub async fn start_on(nodes: usize, shared: Shared) -> Option<Self> {
        Self::start_with(nodes, shared, false).await
    }

    /// The same with the public URL on `localhost`, where passkeys work.
    pub async fn start_on_localhost(nodes: usize) -> Option<Self> {
        Self::start_with(nodes, Shared::PostgresAndRedis, true).await
    }

    async fn start_with(nodes: usize, shared: Shared, localhost: bool) -> Option<Self> {
        let (pg, redis) = services()?;
        let redis = (shared == Shared::PostgresAndRedis).then_some(redis);
        let database = PgDatabase::create(&pg).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let proxy = Proxy::start(
            listener,
            ports
                .iter()
                .map(|port| format!("http://127.0.0.1:{port}"))
                .collect(),
        );
        let public_url = if localhost {
            proxy.url.replace("127.0.0.1", "localhost")
        } else {
            proxy.url.clone()
        };
        let mut cluster = Self {
            nodes: Vec::new(),
            remote: Remote::new(&public_url),
            public_url,
            proxy,
            database,
            redis,
            secret: crate::helpers::random_secret_key(),
        };
        // Started together, as an orchestrator starts them.
        for port in ports {
            let node = Node {
                url: format!("http://127.0.0.1:{port}"),
                port,
                process: None,
                dir: tempfile::tempdir().expect("temp dir"),
            };
            cluster.nodes.push(node);
        }
        for i in 0..nodes {
            cluster.spawn(i);
        }
        for i in 0..nodes {
            cluster.wait_ready(i).await;
        }
        Some(cluster)
    }

    /// The environment every node and the CLI share.
    fn command(&self, data_dir: &std::path::Path) -> Command {
        let mut command =
            crate::remote::portcullis(&self.database.url, &self.secret, &self.public_url, data_dir);
        command
            // The tests' webhook receivers listen on loopback.
            .env("PORTCULLIS_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("RUST_LOG", "warn,portcullis=info");
        if let Some(redis) = &self.redis {
            command.env("PORTCULLIS_REDIS_URL", redis);
        }
        command
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.path().join("node.log"))
            .expect("log file");
        let mut command = self.command(node.dir.path());
        command
            .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{}", node.port))
            .env("PORTCULLIS_NODE_NAME", format!("node-{i}"))
            .env("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1")
            .env("PORTCULLIS_SHUTDOWN_GRACE", "1s")
            .env("PORTCULLIS_METRICS_LISTEN", "127.0.0.1:0")
            // The overview test's admin is made in the database, without a second factor.
            .env("PORTCULLIS_ADMIN_REQUIRE_SECOND_FACTOR", "false")
            // The load tests sign many people up from the balancer's one address.
            .env("PORTCULLIS_SIGNUP_MAX_PER_IP", "100000")
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let process = command.spawn().expect("start a node");
        self.nodes[i].process = Some(process);
    }

    /// Waits until node `i` answers `/ready` and the balancer sends it requests.
    async fn wait_ready(&self, i: usize) {
        let node = &self.nodes[i];
        for _ in 0..600 {
            let ready = self
                .remote
                .http
                .get(format!("{}/ready", node.url))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready && self.proxy.is_ready(i) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {i} did not become ready: {}", node.log());
    }

    /// Ends node `i` with SIGKILL, as a crash would.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill().await.expect("kill -9");
        }
    }

    /// SIGTERM, as an orchestrator stops a node: checks that it first answers `/ready` with
    /// 503 `draining` while still serving, then waits for it to exit; whether it exited cleanly.
    pub async fn terminate(&mut self, i: usize) -> bool {
        let Some(mut process) = self.nodes[i].process.take() else {
            return false;
        };
        let pid = process.id().expect("a running node has a pid");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let ready_url = format!("{}/ready", self.nodes[i].url);
        let mut draining = None;
        for _ in 0..100 {
            let answer = self
                .remote
                .http
                .get(&ready_url)
                .send()
                .await
                .expect("GET /ready");
            if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
                draining = Some(answer.json::<Value>().await.expect("json"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let draining = draining.expect("/ready answers 503 after SIGTERM");
        assert_eq!(draining["status"], "draining");
        assert_eq!(draining["node"], format!("node-{i}"));
        let status = tokio::time::timeout(Duration::from_secs(30), process.wait())
            .await
            .expect("the node exits after SIGTERM")
            .expect("wait");
        status.success()
    }

    /// Starts node `i` again on its port and waits until it is ready.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready(i).await;
    }

    /// Runs `portcullis ARGS…` against the cluster's database; its stdout as JSON.
    pub async fn cli(&self, args: &[&str]) -> Value {
        let dir = tempfile::tempdir().expect("temp dir");
        crate::remote::cli_output(self.command(dir.path()), args).await
    }

    /// A confidential client for `client_credentials`; its id and secret.
    pub async fn machine_client(&self) -> (String, String) {
        let created = self
            .cli(&[
                "client",
                "create",
                "--name",
                "Reports",
                "--grant-types",
                "client_credentials",
                "--scopes",
                "reports",
            ])
            .await;
        (
            created["client_id"].as_str().expect("id").to_string(),
            created["client_secret"]
                .as_str()
                .expect("secret")
                .to_string(),
        )
    }

    /// The kids node `i` publishes.
    pub async fn published_kids(&self, i: usize) -> Vec<String> {
        let jwks: Value = self
            .remote
            .http
            .get(format!("{}/oauth/jwks", self.nodes[i].url))
            .send()
            .await
            .expect("GET jwks")
            .json()
            .await
            .expect("json");
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Verifies `token`'s signature with node `i`'s JWKS, as a resource server that fetched
    /// the JWKS from whichever node answered.
    pub async fn verify_with_jwks_of(&self, i: usize, token: &str) {
        let jwks: jsonwebtoken::jwk::JwkSet = self
            .remote
            .http
            .get(format!("{}/oauth/jwks", self.nodes[i].url))
            .send()
            .await
            .expect("GET jwks")
            .json()
            .await
            .expect("jwks");
        let header = jsonwebtoken::decode_header(token).expect("header");
        let jwk = jwks
            .find(header.kid.as_deref().unwrap_or_default())
            .unwrap_or_else(|| panic!("node {i} publishes the signing key"));
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable jwk");
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[self.proxy.url.as_str()]);
        validation.validate_aud = false;
        if let Err(e) = jsonwebtoken::decode::<Value>(token, &key, &validation) {
            panic!("the signature verifies with node {i}'s JWKS: {e}");
        }
    }

    /// A person signed up through the balancer; their email.
    pub async fn sign_up(&self) -> String {
        let email = crate::helpers::unique_email();
        let answer = self
            .remote
            .http
            .post(format!("{}/api/v1/signup", self.proxy.url))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("POST signup");
        assert_eq!(answer.status(), StatusCode::CREATED);
        email
    }

    /// Gives the account of `email` the admin role, in the shared database.
    pub async fn grant_admin(&self, email: &str) {
        let pool = sqlx::PgPool::connect(&self.database.url)
            .await
            .expect("connect to the cluster's database");
        sqlx::query(
            "insert into user_roles (user_id, role) select id, 'admin' from users \
             where email_lower = lower($1)",
        )
        .bind(email)
        .execute(&pool)
        .await
        .expect("grant admin");
        pool.close().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Asks `refused` every 2 ms until it says yes or `within` has passed since `since`; how long
/// after `since` it first did.
pub async fn time_until<F, Fut>(
    since: Instant,
    within: Duration,
    mut refused: F,
) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if refused().await {
            return Some(since.elapsed());
        }
        if since.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The `q` quantile of sorted `samples`.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index.min(samples.len() - 1)]
}
