use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use portcullis::app::App;
use portcullis::clock::Clock;
use portcullis::config::{Config, RawConfig};
use portcullis::store::Store;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore;
use reqwest::header::{HeaderValue, LOCATION, ORIGIN, REFRESH};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generates one `#[tokio::test]` per backend for each listed `async fn name(app: TestApp)`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::helpers::TestApp::spawn_sqlite().await).await
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) = crate::helpers::TestApp::spawn_postgres_redis().await {
                        super::$name(app).await
                    }
                }
            )*
        }
    };
}

pub const PASSWORD: &str = "tangerine-lamp-42";

/// A fresh Postgres database for one test, dropped when the test ends.
/// A fresh Postgres database, dropped with this value.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("PORTCULLIS_TEST_POSTGRES_URL is not reachable: {e}"));
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let mut url = url::Url::parse(admin_url).expect("PORTCULLIS_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Self {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("drop database if exists {} with (force)", self.name);
        // Drop cannot await; a short-lived runtime on its own thread does the clean-up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(&sql).execute(&mut conn).await;
                    }
                });
            }
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub url: String,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub clock: Clock,
    pub store: Store,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    raw: RawConfig,
    server: Option<Server>,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl TestApp {
    pub async fn spawn_sqlite() -> Self {
        Self::spawn(None, None).await
    }

    /// `None` (the test is skipped with a notice) when the variables are not set outside CI.
    pub async fn spawn_postgres_redis() -> Option<Self> {
        let pg = std::env::var("PORTCULLIS_TEST_POSTGRES_URL").ok();
        let redis = std::env::var("PORTCULLIS_TEST_REDIS_URL").ok();
        match (pg, redis) {
            (Some(pg), Some(redis)) => Some(Self::spawn(Some(pg), Some(redis)).await),
            _ if std::env::var_os("CI").is_some() => {
                panic!("CI must set PORTCULLIS_TEST_POSTGRES_URL and PORTCULLIS_TEST_REDIS_URL")
            }
            _ => {
                eprintln!(
                    "skipped: set PORTCULLIS_TEST_POSTGRES_URL and PORTCULLIS_TEST_REDIS_URL to run \
                     this test on Postgres with Redis sessions"
                );
                None
            }
        }
    }

    async fn spawn(pg_admin_url: Option<String>, redis_url: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::spawn_on(listener, pg_admin_url, redis_url, |_| {}).await
    }

    /// Another server beside this one, on a database of its own of the same kind, listening on
    /// `listener` (bound first, so its URL can be registered elsewhere), with changed settings.
    pub async fn spawn_beside(
        &self,
        listener: TcpListener,
        change: impl FnOnce(&mut RawConfig),
    ) -> Self {
        let pg_admin_url = self._pg.as_ref().map(|pg| pg.admin_url.clone());
        Self::spawn_on(listener, pg_admin_url, self.raw.redis_url.clone(), change).await
    }

    async fn spawn_on(
        listener: TcpListener,
        pg_admin_url: Option<String>,
        redis_url: Option<String>,
        change: impl FnOnce(&mut RawConfig),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = match pg_admin_url {
            Some(url) => Some(PgDatabase::create(&url).await),
            None => None,
        };
        let addr = listener.local_addr().expect("local addr");
        let url = format!("http://{addr}");
        let mut raw = RawConfig {
            data_dir: dir.path().to_path_buf(),
            database_url: pg.as_ref().map(|p| p.url.clone()),
            public_url: url.clone(),
            listen: addr.to_string(),
            redis_url: redis_url.clone(),
            // On Postgres the key must be given; one per test database.
            secret_key: pg.as_ref().map(|_| random_secret_key()),
            // In-process servers stop at once (the cluster tests drain real nodes).
            shutdown_grace: Some(std::time::Duration::ZERO),
            // Each server its own metrics port, so tests in parallel do not collide.
            metrics_listen: "127.0.0.1:0".into(),
            ..RawConfig::default()
        };
        change(&mut raw);
        let clock = Clock::system();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let server = Server::start(&raw, &clock, listener).await;
        Self {
            addr,
            url,
            client,
            jar,
            clock,
            store: server.store.clone(),
            data_dir: dir.path().to_path_buf(),
            database_url: pg.as_ref().map(|p| p.url.clone()),
            raw,
            server: Some(server),
            _dir: dir,
            _pg: pg,
        }
    }

    /// Restarts with changed settings (same port, data and database).
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut RawConfig)) {
        change(&mut self.raw);
        self.restart().await;
    }

    /// Restarts with the public URL on `localhost` (same port), where passkeys work: WebAuthn
    /// needs a domain name, and browsers allow it over plain http only on localhost.
    pub async fn on_localhost(&mut self) {
        let url = format!("http://localhost:{}", self.addr.port());
        let public_url = url.clone();
        self.restart_with(|raw| raw.public_url = public_url).await;
        self.url = url;
    }

    /// Stops the server (gracefully) and starts a new one on the same port and data.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("re-bind the same port");
        let server = Server::start(&self.raw, &self.clock, listener).await;
        self.store = server.store.clone();
        self.server = Some(server);
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.at(path)).send().await.expect("GET")
    }

    /// GET a page, expecting 200, and return its HTML.
    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.expect("body")
    }

    /// The CSRF token from the form on `path`.
    pub async fn csrf_token(&self, path: &str) -> String {
        let html = self.page(path).await;
        hidden_value(&html, "csrf_token").expect("the page has a csrf_token field")
    }

    /// Posts a form the way a browser on this site does (with our Origin).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.at(path))
            .header(ORIGIN, &self.url)
            .form(fields)
            .send()
            .await
            .expect("POST")
    }

    pub async fn signup(&self, email: &str, password: &str) -> reqwest::Response {
        let token = self.csrf_token("/signup").await;
        self.post_form(
            "/signup",
            &[
                ("csrf_token", &token),
                ("email", email),
                ("password", password),
                ("display_name", ""),
            ],
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.login_with_next(email, password, "").await
    }

    pub async fn login_with_next(
        &self,
        email: &str,
        password: &str,
        next: &str,
    ) -> reqwest::Response {
        let token = self.csrf_token("/login").await;
        self.post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", email),
                ("password", password),
                ("next", next),
            ],
        )
        .await
    }

    pub async fn logout(&self) -> reqwest::Response {
        let token = self.csrf_token("/account").await;
        self.post_form("/logout", &[("csrf_token", &token)]).await
    }

    /// The session cookie's value as the browser holds it.
    pub fn session_cookie(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.url).ok()?;
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix("portcullis_session=").map(str::to_string))
    }

    /// A second browser with its own cookie jar.
    pub fn fresh_client_with_cookies(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub async fn csrf_token_with(&self, client: &reqwest::Client, path: &str) -> String {
        let html = client
            .get(self.at(path))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        hidden_value(&html, "csrf_token").expect("the page has a csrf_token field")
    }

    pub async fn post_form_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.at(path))
            .header(ORIGIN, &self.url)
            .form(fields)
            .send()
            .await
            .expect("POST")
    }

    /// A second browser with no cookies.
    pub fn fresh_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }
}

/// One running server process-in-a-task.
struct Server {
    store: Store,
    metrics_addr: Option<std::net::SocketAddr>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(raw: &RawConfig, clock: &Clock, listener: TcpListener) -> Self {
        let config = Config::from_raw(raw.clone()).expect("test config is valid");
        let app = App::start(config, clock.clone()).await.expect("app starts");
        let store = app.state.store.clone();
        let metrics_addr = app.metrics_addr();
        let (shutdown, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            app.serve(listener, stop).await.expect("server runs");
        });
        Self {
            store,
            metrics_addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.expect("server stopped cleanly");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.task.abort();
        }
    }
}

impl TestApp {
    /// Where the metrics listener listens.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.server
            .as_ref()
            .and_then(|s| s.metrics_addr)
            .expect("metrics are on")
    }

    /// The text `/metrics` serves now (from the metrics listener, as Prometheus scrapes it).
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr();
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("metrics answer");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> Config {
        Config::from_raw(self.raw.clone()).expect("test config is valid")
    }

    /// The `portcullis` binary, set up for this app's data directory and database.
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORTCULLIS_DATA_DIR", &self.data_dir)
            .env("RUST_LOG", "warn")
            .env("PORTCULLIS_METRICS_LISTEN", "127.0.0.1:0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(url) = &self.database_url {
            command.env("PORTCULLIS_DATABASE_URL", url);
        }
        if let Some(key) = &self.raw.secret_key {
            command.env("PORTCULLIS_SECRET_KEY", key);
        }
        if let Some(url) = &self.raw.redis_url {
            command.env("PORTCULLIS_REDIS_URL", url);
        }
        command
    }

    /// Runs `portcullis ARGS…`; returns its stdout as JSON lines, panicking on failure.
    pub async fn run_cli(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let output = self
            .command()
            .args(args)
            .output()
            .await
            .expect("run portcullis");
        assert!(
            output.status.success(),
            "portcullis {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON output"))
            .collect()
    }

    /// Waits (up to 10 s) until the mail worker has tried every queued mail once: pages queue
    /// their mail and answer before it is sent.
    pub async fn mail_settled(&self) {
        for _ in 0..200 {
            if self.store.untried_mail().await.expect("mail queue") == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("mail still waiting to be sent after 10 s");
    }

    /// Every mail written to `<data dir>/mail/` for `to`, oldest first, with quoted-printable
    /// soft breaks and escapes decoded (once the queue has been worked off).
    pub async fn mails_to(&self, to: &str) -> Vec<String> {
        self.mail_settled().await;
        let dir = self.data_dir.join("mail");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|raw| decode_quoted_printable(&raw))
            .filter(|mail| mail.contains(&format!("To: {to}")))
            .collect()
    }

    pub async fn last_mail_to(&self, to: &str) -> String {
        self.mails_to(to)
            .await
            .pop()
            .unwrap_or_else(|| panic!("no mail to {to}"))
    }

    /// The path and query of the first link to `path` in a mail (`/verify-email?token=…`).
    pub fn link_in(&self, mail: &str, path: &str) -> String {
        let prefix = format!("{}{}", self.url, path);
        let start = mail
            .find(&prefix)
            .unwrap_or_else(|| panic!("a link to {path} in {mail}"));
        let link: String = mail[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
            .collect();
        link[self.url.len()..].to_string()
    }
}

pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `<input type="hidden" name="NAME" value="…">` in a page.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// Where the browser goes next: a redirect's `Location`, or the target of the page that a form
/// post ends on when its redirect would leave the site (its `Refresh: 0;url=…` header).
pub fn location(response: &reqwest::Response) -> String {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    header(LOCATION)
        .or_else(|| header(REFRESH).and_then(|r| r.strip_prefix("0;url=")))
        .unwrap_or_default()
        .to_string()
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Signs a new account up (which signs it in) and returns its email.
pub async fn signed_up(app: &TestApp) -> String {
    let email = unique_email();
    let response = app.signup(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signup succeeds");
    email
}

/// Gives the account of `email` the admin role; returns the account.
pub async fn make_admin(app: &TestApp, email: &str) -> portcullis::store::User {
    let user = app
        .store
        .find_user_by_email(email)
        .await
        .expect("query")
        .expect("the account");
    app.store
        .add_user_role(&user.id, "admin", None)
        .await
        .expect("grant admin");
    user
}

/// A fresh `PORTCULLIS_SECRET_KEY`: 32 random bytes in base64.
pub fn random_secret_key() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|id| *id.as_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The value of the sample `name{labels}` in a Prometheus text exposition; 0 when absent (a
/// counter that never moved is not exported). `labels` must be all of the sample's labels, in
/// any order.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let mut found: Vec<(String, String)> = series_labels
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        found.sort();
        wanted.sort();
        if found == wanted {
            return value.parse().expect("a number");
        }
    }
    0.0
}

/// A client_credentials client made with the CLI: its id and secret.
pub async fn machine_client(app: &TestApp, scopes: &str) -> (String, String) {
    let out = app
        .run_cli(&[
            "client",
            "create",
            "--name",
            "Billing worker",
            "--grant-types",
            "client_credentials",
            "--scopes",
            scopes,
        ])
        .await;
    let id = out[0]["client_id"].as_str().expect("client_id").to_string();
    let secret = out[0]["client_secret"]
        .as_str()
        .expect("client_secret")
        .to_string();
    (id, secret)
}

/// A client_credentials grant (client_secret_basic) for the client `id`.
pub async fn client_credentials_grant(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.fresh_client()
        .post(app.at("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST /oauth/token")
}

/// The real binary serving with its data in `dir` on a free port, its log in
/// `dir/server.log`, with `env` on top of the basics; waits until it answers. Its URL too.
pub async fn serve_binary(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    let server = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", dir)
        .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_PUBLIC_URL", &url)
        .env("PORTCULLIS_METRICS_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .arg("serve")
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("{url}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (server, url)
}

/// A Redis server of the test's own on a free port, stopped when dropped.
pub struct OwnRedis {
    child: std::process::Child,
    pub url: String,
}

impl OwnRedis {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (it is on this machine kind and in CI)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl OwnRedis {
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
