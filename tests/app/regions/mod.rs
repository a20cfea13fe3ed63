//! Two regions on one Postgres primary, as the README's multi-region section runs them: the
//! test starts its own primary and a streaming replica from the machine's Postgres binaries,
//! a Redis per region, and one node of the real binary per region. Region two reaches the
//! primary (its nodes' writes and its replica's WAL stream) through a TCP proxy that delays
//! every byte by a one-way latency, since this kernel has no `netem`.

mod cases;
mod delay;
mod measure;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};

pub use delay::DelayProxy;

pub use crate::remote::PASSWORD;
/// One-way latency between the regions: 50 ms, or `PORTCULLIS_TEST_ONE_WAY_MS`.
pub fn one_way() -> Duration {
    let ms = std::env::var("PORTCULLIS_TEST_ONE_WAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(50);
    Duration::from_millis(ms)
}

/// The Postgres binaries (`initdb`, `pg_ctl`, `pg_basebackup`): `PORTCULLIS_TEST_PG_BIN`, else
/// the newest under `/usr/lib/postgresql`; and `redis-server`. `None` (skipped with a notice)
/// outside CI when one is missing.
fn postgres_bin() -> Option<PathBuf> {
    let found = std::env::var_os("PORTCULLIS_TEST_PG_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|entry| {
                    let entry = entry.ok()?;
                    let version = entry.file_name().to_str()?.parse().ok()?;
                    Some((version, entry.path().join("bin")))
                })
                .collect();
            versions.sort();
            versions.pop().map(|(_, bin)| bin)
        })
        .filter(|bin| bin.join("pg_ctl").exists());
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found.is_none() || !redis {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI needs the Postgres server binaries (initdb, pg_ctl, pg_basebackup) and \
                 redis-server"
            );
        }
        eprintln!(
            "skipped: the multi-region tests need the Postgres server binaries and redis-server"
        );
        return None;
    }
    found
}

/// Postgres refuses to run as root: then its commands run as the `postgres` user.
fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One Postgres server of the test's own, in a temporary directory.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    pub port: u16,
}

impl Postgres {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one of the Postgres programs (as `postgres` when the test runs as root).
    async fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let out = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    fn new(bin: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = running_as_root();
        if as_postgres {
            let owned = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(owned.success(), "chown the data directory to postgres");
        }
        Self {
            dir,
            bin: bin.to_path_buf(),
            as_postgres,
            port: free_port(),
        }
    }

    /// Settings of this server, after the ones it was made with (the last one counts).
    fn configure(&self) {
        use std::io::Write;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .expect("postgresql.conf");
        writeln!(
            conf,
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = 200\nfsync = off\nwal_level = replica\nmax_wal_senders = 10\n\
             hot_standby = on",
            self.port,
            self.dir.path().display()
        )
        .expect("write postgresql.conf");
    }

    /// A new primary with an empty `portcullis` database.
    pub async fn primary(bin: &Path) -> Self {
        let server = Self::new(bin);
        let data = server.data();
        server
            .run(
                "initdb",
                &[
                    "-D",
                    data.to_str().expect("path"),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            .await;
        server.configure();
        server.start().await;
        let pool = sqlx::PgPool::connect(&server.url("postgres"))
            .await
            .expect("connect to the new primary");
        sqlx::query("create database portcullis")
            .execute(&pool)
            .await
            .expect("create the database");
        pool.close().await;
        server
    }

    /// A streaming replica of the primary behind `upstream_port` (`pg_basebackup -R`).
    pub async fn replica_of(bin: &Path, upstream_port: u16) -> Self {
        let server = Self::new(bin);
        let data = server.data();
        let conninfo = format!("host=127.0.0.1 port={upstream_port} user=postgres");
        server
            .run(
                "pg_basebackup",
                &[
                    "-d",
                    &conninfo,
                    "-D",
                    data.to_str().expect("path"),
                    "-R",
                    "-X",
                    "stream",
                    // A checkpoint at once, not spread over minutes.
                    "-c",
                    "fast",
                    "--no-sync",
                ],
            )
            .await;
        server.configure();
        server.start().await;
        server
    }

    pub async fn start(&self) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("path"),
                "-l",
                log.to_str().expect("path"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .await;
    }

    /// Stops at once, as a crash or a lost region would (`-m immediate`).
    pub async fn stop_immediately(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("path"),
                "-m",
                "immediate",
                "stop",
            ],
        )
        .await;
    }

    /// Makes a replica the primary (`pg_ctl promote`), waiting until it takes writes.
    pub async fn promote(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().expect("path"), "-w", "promote"],
        )
        .await;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The server outlives the test process otherwise.
        let data = self.data();
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            std::process::Command::new(pg_ctl)
        };
        let _ = command
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One node of the real binary in a region.
pub struct RegionNode {
    pub url: String,
    pub region: &'static str,
    process: Option<Child>,
    dir: tempfile::TempDir,
}

impl RegionNode {
    fn not_started(region: &'static str) -> Self {
        Self {
            url: String::new(),
            region,
            process: None,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// SIGKILL, as a lost region.
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().await.expect("kill -9");
        }
    }
}

/// The two regions: region one holds the primary; region two a replica and the delayed link.
pub struct Regions {
    pub one: RegionNode,
    pub two: RegionNode,
    pub primary: Postgres,
    pub replica: Postgres,
    /// Region two's way to the primary: its node's writes and its replica's stream.
    pub link: DelayProxy,
    redis: [crate::helpers::OwnRedis; 2],
    /// Requests as people and apps make them; its public URL is the one of both regions (the
    /// issuer), as a global balancer serves them.
    pub remote: crate::remote::Remote,
    secret: String,
}

impl Regions {
    /// `None` when the Postgres binaries are missing outside CI.
    pub async fn start() -> Option<Self> {
        let bin = postgres_bin()?;
        let started = Instant::now();
        let primary = Postgres::primary(&bin).await;
        let link = DelayProxy::start(primary.port, one_way()).await;
        let replica = Postgres::replica_of(&bin, link.port).await;
        let redis = [
            crate::helpers::OwnRedis::start().await,
            crate::helpers::OwnRedis::start().await,
        ];
        eprintln!(
            "primary, replica and two Redis started in {:?}",
            started.elapsed()
        );
        let mut regions = Self {
            one: RegionNode::not_started("one"),
            two: RegionNode::not_started("two"),
            remote: crate::remote::Remote::new(&format!("http://127.0.0.1:{}", free_port())),
            secret: crate::helpers::random_secret_key(),
            primary,
            replica,
            link,
            redis,
        };
        // Region one first: it migrates the database the other region then reads.
        let one_env = [
            ("PORTCULLIS_DATABASE_URL", regions.primary.url("portcullis")),
            ("PORTCULLIS_REDIS_URL", regions.redis[0].url.clone()),
            ("PORTCULLIS_REGION", "one".to_string()),
        ];
        regions.one = regions.spawn("one", &one_env).await;
        eprintln!("region one's node ready after {:?}", started.elapsed());
        let two_env = [
            (
                "PORTCULLIS_DATABASE_URL",
                format!(
                    "postgres://postgres@127.0.0.1:{}/portcullis",
                    regions.link.port
                ),
            ),
            (
                "PORTCULLIS_DATABASE_REPLICA_URL",
                regions.replica.url("portcullis"),
            ),
            ("PORTCULLIS_REDIS_URL", regions.redis[1].url.clone()),
            ("PORTCULLIS_REGION", "two".to_string()),
        ];
        regions.two = regions.spawn("two", &two_env).await;
        eprintln!("region two's node ready after {:?}", started.elapsed());
        Some(regions)
    }

    /// Starts a node of `region` and waits until `/ready` says it is ready.
    async fn spawn(&self, region: &'static str, env: &[(&str, String)]) -> RegionNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log file");
        let process = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORTCULLIS_SECRET_KEY", &self.secret)
            .env("PORTCULLIS_PUBLIC_URL", &self.remote.public_url)
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_NODE_NAME", format!("node-{region}"))
            .env("PORTCULLIS_METRICS_LISTEN", "127.0.0.1:0")
            .env("PORTCULLIS_SIGNUP_MAX_PER_IP", "100000")
            .env("PORTCULLIS_LOGIN_MAX_FAILURES_PER_IP", "100000")
            .env("RUST_LOG", "warn,portcullis=info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start a node");
        let node = RegionNode {
            url: format!("http://127.0.0.1:{port}"),
            region,
            process: Some(process),
            dir,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if self.ready(&node).await.0 == StatusCode::OK {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {region} did not become ready: {}", node.log());
    }

    /// `/ready` of `node`: its status and body.
    pub async fn ready(&self, node: &RegionNode) -> (StatusCode, Value) {
        match self
            .remote
            .http
            .get(format!("{}/ready", node.url))
            .send()
            .await
        {
            Ok(answer) => {
                let status = answer.status();
                (status, answer.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Value::Null),
        }
    }

    /// Runs `portcullis ARGS…` on the primary, as an operator in region one; stdout as JSON.
    pub async fn cli(&self, args: &[&str]) -> Value {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = crate::remote::portcullis(
            &self.primary.url("portcullis"),
            &self.secret,
            &self.remote.public_url,
            dir.path(),
        );
        crate::remote::cli_output(command, args).await
    }

    pub async fn sign_up_at(&self, node: &RegionNode, email: &str) -> reqwest::Response {
        self.remote.sign_up(&node.url, email).await
    }

    pub async fn api_login_at(&self, node: &RegionNode, email: &str) -> reqwest::Response {
        self.remote.api_login(&node.url, email).await
    }

    pub async fn api_tokens_at(&self, node: &RegionNode, email: &str) -> (String, String) {
        self.remote.api_sign_in(&node.url, email).await
    }

    pub async fn api_logout_at(&self, node: &RegionNode, refresh: &str) {
        self.remote.api_logout(&node.url, refresh).await
    }

    pub async fn whoami_at(&self, node: &RegionNode, token: &str) -> StatusCode {
        self.remote.whoami(&node.url, token).await
    }

    pub async fn userinfo_at(&self, node: &RegionNode, token: &str) -> StatusCode {
        self.remote.userinfo(&node.url, token).await
    }

    /// Whether `token` is active at `node`, introspected by `client` (id, secret).
    pub async fn active_at(
        &self,
        node: &RegionNode,
        client: &(String, String),
        token: &str,
    ) -> bool {
        self.remote
            .active_at(&node.url, &client.0, &client.1, token)
            .await
    }

    pub async fn browser_signed_in(&self, node: &RegionNode, email: &str) -> reqwest::Client {
        self.remote.browser_signed_in(&node.url, email).await
    }

    pub async fn csrf_of(
        &self,
        browser: &reqwest::Client,
        node: &RegionNode,
        path: &str,
    ) -> String {
        crate::remote::csrf_of(browser, &node.url, path).await
    }
}
