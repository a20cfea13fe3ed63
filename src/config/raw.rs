//! The configuration as read, before it is checked: every setting with its default.

#[allow(unused_imports)]
use super::*;

/// The configuration as written by the operator, before validation.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawConfig {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// Connections this node opens to the database at most.
    pub database_max_connections: u32,
    /// This node's name in logs and `/ready`; the host name when unset.
    pub node_name: Option<String>,
    /// The region this node runs in, shown in logs, metrics and `/ready`.
    pub region: Option<String>,
    /// The region's streaming replica of the primary (Postgres); token checks read there.
    /// Unset in the primary's region.
    pub database_replica_url: Option<String>,
    /// After SIGTERM, how long `/ready` answers 503 before the node stops taking requests, so
    /// the load balancer takes it out first. Unset: 5 s on Postgres, none on SQLite.
    #[serde(with = "humantime_serde::option")]
    pub shutdown_grace: Option<Duration>,
    /// A connection that has not sent a whole request head within this is closed (also an
    /// idle keep-alive connection).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request body that has not arrived within this is refused.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// The longest a request may take, its handling included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connections open at once; unset: from the open-file limit.
    pub max_connections: Option<usize>,
    pub public_url: String,
    pub listen: String,
    /// Where `/metrics` (Prometheus) is served, apart from the public listener; `off` turns
    /// metrics off.
    pub metrics_listen: String,
    pub redis_url: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub session_max_lifetime: Duration,
    pub max_body_bytes: usize,
    /// How long a sign-in may wait for a password-hashing worker before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub password_queue_timeout: Duration,
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    #[serde(with = "humantime_serde")]
    pub login_failure_window: Duration,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
    pub require_verified_email: bool,
    pub admin_require_second_factor: bool,
    pub totp_issuer: String,
    /// `auto` (on where the public URL allows WebAuthn), `on` (refuse to start where it does
    /// not) or `off`.
    pub passkeys: String,
    /// The WebAuthn relying-party id: the public URL's host unless set to a parent domain.
    pub passkey_rp_id: Option<String>,
    pub signing_alg: String,
    /// "Sign in with Google": both set turn it on.
    pub google_client_id: Option<String>,
    pub google_client_secret: Option<String>,
    /// Overridable so that any OpenID provider (or a test instance) can stand in for Google.
    pub google_issuer: String,
    /// More upstream OpenID providers, declared as `[[upstream]]` tables in the config file.
    pub upstream: Vec<RawUpstream>,
    /// Web origins whose pages may call `/api/v1` from the browser (CORS). Empty: CORS is off.
    /// A list in the config file; a comma-separated string in the environment.
    pub cors_allowed_origins: StringList,
    /// New accounts per client address per hour, on the signup page and the API.
    pub signup_max_per_ip: u32,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: StringList,
    /// How long audit events are kept.
    #[serde(with = "humantime_serde")]
    pub audit_retention: Duration,
    /// Lifetimes of the first-party API's tokens.
    #[serde(with = "humantime_serde")]
    pub api_access_token_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub api_refresh_token_lifetime: Duration,
    /// Writes events (webhooks, NATS); off only to measure what they cost.
    pub events_enabled: bool,
    /// Also writes `sign_in.succeeded` and `sign_in.failed` (many events).
    pub sign_in_events: bool,
    /// Lets webhooks reach loopback and private addresses (a receiver on the same network).
    pub webhook_allow_private: bool,
    /// NATS server whose JetStream receives every event too.
    pub nats_url: Option<String>,
    /// A delivery still failing this long after its event is marked failed.
    #[serde(with = "humantime_serde")]
    pub event_max_age: Duration,
}

/// A list in the config file, or a comma-separated string in an environment variable.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StringList {
    #[default]
    None,
    List(Vec<String>),
    Text(String),
}

impl StringList {
    pub(super) fn items(&self) -> Vec<String> {
        let items: Vec<String> = match self {
            Self::None => Vec::new(),
            Self::List(list) => list.clone(),
            Self::Text(text) => text.split(',').map(str::to_string).collect(),
        };
        items
            .into_iter()
            .map(|item| item.trim().to_string())
            .filter(|item| !item.is_empty())
            .collect()
    }
}

impl From<Vec<&str>> for StringList {
    fn from(list: Vec<&str>) -> Self {
        Self::List(list.into_iter().map(str::to_string).collect())
    }
}

/// One upstream OpenID provider people can sign in with.
#[derive(Clone, Deserialize, Serialize)]
pub struct RawUpstream {
    /// Short name used in URLs: `/auth/oauth/{name}/callback`.
    pub name: String,
    /// The button text, like "Sign in with Example".
    pub label: Option<String>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 10,
            node_name: None,
            region: None,
            database_replica_url: None,
            shutdown_grace: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: None,
            public_url: "http://localhost:8080".into(),
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9464".into(),
            google_client_id: None,
            google_client_secret: None,
            google_issuer: GOOGLE_ISSUER.into(),
            upstream: Vec::new(),
            redis_url: None,
            secret_key: None,
            secret_key_file: None,
            // NIST SP 800-63B AAL2: 30 minutes idle, 12 hours at most.
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_max_lifetime: Duration::from_secs(12 * 3600),
            max_body_bytes: 64 * 1024,
            password_queue_timeout: crate::password::DEFAULT_QUEUE_BOUND,
            login_max_failures_per_account: 5,
            login_max_failures_per_ip: 50,
            login_failure_window: Duration::from_secs(15 * 60),
            smtp_url: None,
            mail_from: None,
            require_verified_email: false,
            admin_require_second_factor: true,
            totp_issuer: "Portcullis".into(),
            passkeys: "auto".into(),
            passkey_rp_id: None,
            signing_alg: "RS256".into(),
            cors_allowed_origins: StringList::None,
            signup_max_per_ip: 20,
            trusted_proxies: StringList::None,
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            api_access_token_lifetime: Duration::from_secs(15 * 60),
            api_refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
            events_enabled: true,
            sign_in_events: false,
            webhook_allow_private: false,
            nats_url: None,
            event_max_age: Duration::from_secs(24 * 3600),
        }
    }
}
