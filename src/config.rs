//! Configuration: built-in defaults, then an optional TOML file, then `PORTCULLIS_*` environment
//! variables (each layer overrides the one before). Invalid values stop start-up with a message
//! that names the setting and says what to change.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use url::Url;

/// The configuration as written by the operator, before validation.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RawConfig {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub public_url: String,
    pub listen: String,
    pub redis_url: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub session_max_lifetime: Duration,
    pub max_body_bytes: usize,
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    #[serde(with = "humantime_serde")]
    pub login_failure_window: Duration,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
    pub require_verified_email: bool,
    pub admin_require_second_factor: bool,
    pub totp_issuer: String,
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
    fn items(&self) -> Vec<String> {
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
            public_url: "http://localhost:8080".into(),
            listen: "127.0.0.1:8080".into(),
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
            login_max_failures_per_account: 5,
            login_max_failures_per_ip: 50,
            login_failure_window: Duration::from_secs(15 * 60),
            smtp_url: None,
            mail_from: None,
            require_verified_email: false,
            admin_require_second_factor: true,
            totp_issuer: "Portcullis".into(),
            signing_alg: "RS256".into(),
            cors_allowed_origins: StringList::None,
            signup_max_per_ip: 20,
            trusted_proxies: StringList::None,
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            api_access_token_lifetime: Duration::from_secs(15 * 60),
            api_refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Which database the store opens.
#[derive(Clone)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(Secret),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(url) => write!(f, "Sqlite({url})"),
            Self::Postgres(url) => write!(f, "Postgres({})", redact_url(url.expose())),
        }
    }
}

/// A string that never shows in Debug output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The 32-byte server key that encrypts secrets at rest (TOTP secrets, signing keys).
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn decode(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub public_url: Url,
    pub listen: SocketAddr,
    pub redis_url: Option<Secret>,
    pub secret_key: SecretKey,
    pub session_idle_timeout: Duration,
    pub session_max_lifetime: Duration,
    pub max_body_bytes: usize,
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    pub require_verified_email: bool,
    /// Admins without a second factor are sent to set one up before the panel opens.
    pub admin_require_second_factor: bool,
    pub totp_issuer: String,
    pub signing_alg: crate::tokens::SigningAlg,
    pub upstreams: Vec<UpstreamConfig>,
    /// Serialised origins (`https://app.example`), exactly as browsers send them.
    pub cors_allowed_origins: Vec<String>,
    pub signup_max_per_ip: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub audit_retention: Duration,
    pub api_access_token_lifetime: Duration,
    pub api_refresh_token_lifetime: Duration,
}

pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// A validated upstream OpenID provider.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    pub name: String,
    pub label: String,
    /// Exactly as configured: it must equal the `iss` the provider puts in its tokens.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// A browser origin: scheme, host and port only (RFC 6454), as the `Origin` header carries it.
fn parse_origin(text: &str) -> Result<String, ConfigError> {
    let problem = || {
        ConfigError(format!(
            "PORTCULLIS_CORS_ALLOWED_ORIGINS: {text:?} is not an origin; write it like \
             https://app.example.com (scheme, host and port only, no path, no wildcard)"
        ))
    };
    let url = Url::parse(text).map_err(|_| problem())?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(problem());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(problem());
    }
    Ok(url.origin().ascii_serialization())
}

/// An address (`10.0.0.5`) or a range (`10.0.0.0/8`, `fd00::/8`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, ConfigError> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            ConfigError(format!(
                "PORTCULLIS_TRUSTED_PROXIES: {text:?} is not an IP address or range; write it \
                 like 10.0.0.5 or 10.0.0.0/8"
            ))
        })
}

/// A configuration problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults → TOML file (`--config` or `PORTCULLIS_CONFIG`) → environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("PORTCULLIS_CONFIG").map(PathBuf::from));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "the config file {} does not exist; fix --config or PORTCULLIS_CONFIG",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("PORTCULLIS_").ignore(&["config"]));
        Self::from_figment(figment)
    }

    /// Validates a figment (tests build one directly) and prepares the data directory.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawConfig = figment.extract().map_err(|errors| {
            let messages: Vec<String> = errors
                .into_iter()
                .map(|e| {
                    let key = e.path.join(".").to_lowercase();
                    let hint = if key.ends_with("timeout")
                        || key.ends_with("lifetime")
                        || key.ends_with("window")
                    {
                        " (write durations like 30m, 12h or 7d)"
                    } else {
                        ""
                    };
                    format!(
                        "PORTCULLIS_{} ({key}): {}{hint}",
                        key.to_uppercase(),
                        e.kind
                    )
                })
                .collect();
            ConfigError(messages.join("; "))
        })?;
        Self::validate(raw)
    }

    /// Validates settings given as a struct (tests and embedders).
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let public_url = Url::parse(&raw.public_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError(format!(
                    "PORTCULLIS_PUBLIC_URL (public_url) must be an absolute http:// or https:// URL \
                     such as https://login.example.com, got {:?}",
                    raw.public_url
                ))
            })?;
        let listen: SocketAddr = raw.listen.parse().map_err(|_| {
            ConfigError(format!(
                "PORTCULLIS_LISTEN (listen) must be an address and port such as 127.0.0.1:8080 \
                 or 0.0.0.0:8080, got {:?}",
                raw.listen
            ))
        })?;
        for (name, value) in [
            ("PORTCULLIS_SESSION_IDLE_TIMEOUT", raw.session_idle_timeout),
            ("PORTCULLIS_SESSION_MAX_LIFETIME", raw.session_max_lifetime),
            ("PORTCULLIS_LOGIN_FAILURE_WINDOW", raw.login_failure_window),
            ("PORTCULLIS_AUDIT_RETENTION", raw.audit_retention),
            (
                "PORTCULLIS_API_ACCESS_TOKEN_LIFETIME",
                raw.api_access_token_lifetime,
            ),
            (
                "PORTCULLIS_API_REFRESH_TOKEN_LIFETIME",
                raw.api_refresh_token_lifetime,
            ),
        ] {
            if value.as_secs() < 1 {
                return Err(ConfigError(format!(
                    "{name} must be at least one second, written like 30m, 12h or 7d"
                )));
            }
        }
        if raw.session_idle_timeout > raw.session_max_lifetime {
            return Err(ConfigError(
                "PORTCULLIS_SESSION_IDLE_TIMEOUT must not be longer than \
                 PORTCULLIS_SESSION_MAX_LIFETIME"
                    .into(),
            ));
        }
        if raw.max_body_bytes < 1024 {
            return Err(ConfigError(
                "PORTCULLIS_MAX_BODY_BYTES must be at least 1024".into(),
            ));
        }
        let cors_allowed_origins = raw
            .cors_allowed_origins
            .items()
            .iter()
            .map(|origin| parse_origin(origin))
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_proxies = raw
            .trusted_proxies
            .items()
            .iter()
            .map(|item| parse_network(item))
            .collect::<Result<Vec<_>, _>>()?;
        // Retired signing keys stay published for the longest access-token lifetime (24 h).
        if raw.api_access_token_lifetime > Duration::from_secs(24 * 3600) {
            return Err(ConfigError(
                "PORTCULLIS_API_ACCESS_TOKEN_LIFETIME must be at most 24h; use refresh tokens \
                 for longer sign-ins"
                    .into(),
            ));
        }
        if raw.api_refresh_token_lifetime < raw.api_access_token_lifetime {
            return Err(ConfigError(
                "PORTCULLIS_API_REFRESH_TOKEN_LIFETIME must not be shorter than \
                 PORTCULLIS_API_ACCESS_TOKEN_LIFETIME"
                    .into(),
            ));
        }
        if raw.signup_max_per_ip == 0 {
            return Err(ConfigError(
                "PORTCULLIS_SIGNUP_MAX_PER_IP must be at least 1".into(),
            ));
        }
        if raw.login_max_failures_per_account == 0 || raw.login_max_failures_per_ip == 0 {
            return Err(ConfigError(
                "PORTCULLIS_LOGIN_MAX_FAILURES_PER_ACCOUNT and _PER_IP must be at least 1".into(),
            ));
        }

        std::fs::create_dir_all(&raw.data_dir).map_err(|e| {
            ConfigError(format!(
                "cannot create the data directory {} ({e}); set PORTCULLIS_DATA_DIR to a \
                 writable directory",
                raw.data_dir.display()
            ))
        })?;

        let database = match raw.database_url.as_deref().map(str::trim) {
            None | Some("") => DatabaseUrl::Sqlite(format!(
                "sqlite://{}",
                raw.data_dir.join("portcullis.db").display()
            )),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                DatabaseUrl::Postgres(Secret::new(url))
            }
            Some(url) if url.starts_with("sqlite:") => DatabaseUrl::Sqlite(url.to_string()),
            Some(url) => {
                return Err(ConfigError(format!(
                    "PORTCULLIS_DATABASE_URL (database_url) must start with sqlite:// or \
                     postgres://, got {:?}",
                    redact_url(url)
                )));
            }
        };

        let redis_url = match raw.redis_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Some(Secret::new(url))
            }
            Some(url) => {
                return Err(ConfigError(format!(
                    "PORTCULLIS_REDIS_URL (redis_url) must start with redis:// or rediss://, \
                     got {:?}",
                    redact_url(url)
                )));
            }
        };

        let smtp_url = match raw.smtp_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {
                Some(Secret::new(url))
            }
            Some(url) => {
                return Err(ConfigError(format!(
                    "PORTCULLIS_SMTP_URL (smtp_url) must start with smtp:// or smtps://, got {:?}",
                    redact_url(url)
                )));
            }
        };
        let mail_from = match raw.mail_from.as_deref().map(str::trim) {
            None | Some("") => format!(
                "Portcullis <no-reply@{}>",
                public_url.host_str().unwrap_or("localhost")
            ),
            Some(from) => from.to_string(),
        };
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError(format!(
                "PORTCULLIS_MAIL_FROM (mail_from) must be an address like \
                 \"Example Login <login@example.com>\", got {mail_from:?}"
            )));
        }
        let totp_issuer = raw.totp_issuer.trim().to_string();
        if totp_issuer.is_empty() || totp_issuer.contains(':') {
            return Err(ConfigError(
                "PORTCULLIS_TOTP_ISSUER (totp_issuer) must be a non-empty name without ':'".into(),
            ));
        }

        let signing_alg =
            crate::tokens::SigningAlg::parse(raw.signing_alg.trim()).ok_or_else(|| {
                ConfigError(format!(
                    "PORTCULLIS_SIGNING_ALG (signing_alg) must be RS256, ES256 or EdDSA, got {:?}",
                    raw.signing_alg
                ))
            })?;

        let secret_key = load_secret_key(&raw)?;
        let upstreams = upstreams(&raw)?;

        Ok(Self {
            data_dir: raw.data_dir,
            database,
            public_url,
            listen,
            redis_url,
            secret_key,
            session_idle_timeout: raw.session_idle_timeout,
            session_max_lifetime: raw.session_max_lifetime,
            max_body_bytes: raw.max_body_bytes,
            login_max_failures_per_account: raw.login_max_failures_per_account,
            login_max_failures_per_ip: raw.login_max_failures_per_ip,
            login_failure_window: raw.login_failure_window,
            smtp_url,
            mail_from,
            require_verified_email: raw.require_verified_email,
            admin_require_second_factor: raw.admin_require_second_factor,
            totp_issuer,
            signing_alg,
            upstreams,
            cors_allowed_origins,
            signup_max_per_ip: raw.signup_max_per_ip,
            trusted_proxies,
            audit_retention: raw.audit_retention,
            api_access_token_lifetime: raw.api_access_token_lifetime,
            api_refresh_token_lifetime: raw.api_refresh_token_lifetime,
        })
    }

    /// Cookies get the `Secure` flag (and responses HSTS) when the public URL is https.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The public URL's origin, `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }
}

const KEY_HELP: &str =
    "32 random bytes in base64, for example the output of `openssl rand -base64 32`";

/// The key comes from `PORTCULLIS_SECRET_KEY`, else from a key file (`secret_key_file`, or
/// `secret.key` in the data directory), which is generated on first start.
fn load_secret_key(raw: &RawConfig) -> Result<SecretKey, ConfigError> {
    if let Some(text) = raw.secret_key.as_deref() {
        return SecretKey::decode(text).ok_or_else(|| {
            ConfigError(format!(
                "PORTCULLIS_SECRET_KEY (secret_key) must be {KEY_HELP}"
            ))
        });
    }
    let path = raw
        .secret_key_file
        .clone()
        .unwrap_or_else(|| raw.data_dir.join("secret.key"));
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretKey::decode(&text).ok_or_else(|| {
            ConfigError(format!(
                "the key file {} must hold {KEY_HELP}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if raw.secret_key_file.is_some() {
                return Err(ConfigError(format!(
                    "PORTCULLIS_SECRET_KEY_FILE points to {}, which does not exist",
                    path.display()
                )));
            }
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            write_private_file(&path, STANDARD.encode(bytes).as_bytes()).map_err(|e| {
                ConfigError(format!(
                    "cannot write a new secret key to {} ({e}); make the data directory writable \
                     or set PORTCULLIS_SECRET_KEY",
                    path.display()
                ))
            })?;
            tracing::warn!(
                path = %path.display(),
                "generated a new secret key; back it up with the database, it encrypts secrets at rest"
            );
            Ok(SecretKey(bytes))
        }
        Err(e) => Err(ConfigError(format!(
            "cannot read the key file {} ({e})",
            path.display()
        ))),
    }
}

/// Creates a file readable only by its owner, failing if it already exists.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Hides the password in a URL (`postgres://user:***@host/db`).
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "[unparseable URL]".into(),
    }
}

/// The Google preset (from `PORTCULLIS_GOOGLE_*`) followed by the `[[upstream]]` tables.
fn upstreams(raw: &RawConfig) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let mut list = Vec::new();
    let set = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match (set(&raw.google_client_id), set(&raw.google_client_secret)) {
        (Some(client_id), Some(secret)) => {
            let issuer = parse_issuer(&raw.google_issuer).ok_or_else(|| {
                ConfigError(format!(
                    "PORTCULLIS_GOOGLE_ISSUER (google_issuer) must be an http:// or https:// URL \
                     such as {GOOGLE_ISSUER}, got {:?}",
                    raw.google_issuer
                ))
            })?;
            list.push(UpstreamConfig {
                name: "google".into(),
                label: "Sign in with Google".into(),
                issuer,
                client_id,
                client_secret: Secret::new(secret),
            });
        }
        (None, None) => {}
        _ => {
            return Err(ConfigError(
                "set both PORTCULLIS_GOOGLE_CLIENT_ID and PORTCULLIS_GOOGLE_CLIENT_SECRET to turn \
                 on \"Sign in with Google\", or neither"
                    .into(),
            ));
        }
    }
    for upstream in &raw.upstream {
        let name = upstream.name.trim().to_string();
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name {
            return Err(ConfigError(format!(
                "upstream name {name:?} must be 1 to 32 lowercase letters, digits or '-' \
                 (it appears in the callback URL)"
            )));
        }
        if list.iter().any(|u: &UpstreamConfig| u.name == name) {
            return Err(ConfigError(format!(
                "upstream {name:?} is declared twice (\"google\" comes from PORTCULLIS_GOOGLE_*)"
            )));
        }
        let issuer = parse_issuer(&upstream.issuer).ok_or_else(|| {
            ConfigError(format!(
                "upstream {name:?}: issuer must be an http:// or https:// URL, got {:?}",
                upstream.issuer
            ))
        })?;
        if upstream.client_id.trim().is_empty() || upstream.client_secret.trim().is_empty() {
            return Err(ConfigError(format!(
                "upstream {name:?}: client_id and client_secret are both required"
            )));
        }
        let label = upstream
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map_or_else(|| format!("Sign in with {name}"), str::to_string);
        list.push(UpstreamConfig {
            name,
            label,
            issuer,
            client_id: upstream.client_id.trim().to_string(),
            client_secret: Secret::new(upstream.client_secret.trim()),
        });
    }
    Ok(list)
}

fn parse_issuer(value: &str) -> Option<String> {
    let value = value.trim();
    Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .map(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let db = DatabaseUrl::Postgres(Secret::new("postgres://app:hunter2@db/portcullis"));
        let shown = format!(
            "{db:?} {:?} {:?}",
            Secret::new("s3cret"),
            SecretKey([7; 32])
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://app:***@db/portcullis"),
            "{shown}"
        );
    }

    #[test]
    fn a_bad_public_url_names_the_setting() {
        let dir = std::env::temp_dir();
        let raw = RawConfig {
            public_url: "localhost:8080".into(),
            data_dir: dir,
            ..RawConfig::default()
        };
        let err = Config::validate(raw)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("PORTCULLIS_PUBLIC_URL"), "{err}");
    }

    #[test]
    fn google_needs_both_settings_and_upstreams_come_from_the_file() {
        let dir = tempfile_dir();
        let half = RawConfig {
            data_dir: dir.clone(),
            secret_key: Some(URL_SAFE_NO_PAD.encode([1u8; 32])),
            google_client_id: Some("id".into()),
            ..RawConfig::default()
        };
        let err = Config::validate(half).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("PORTCULLIS_GOOGLE_CLIENT_SECRET")),
            "{err:?}"
        );

        let toml = r#"
            google_client_id = "gid"
            google_client_secret = "gsecret"
            secret_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"
            [[upstream]]
            name = "corp"
            label = "Sign in with Corp SSO"
            issuer = "https://sso.corp.example"
            client_id = "cid"
            client_secret = "csecret"
        "#;
        let figment = Figment::from(Serialized::defaults(RawConfig {
            data_dir: dir,
            ..RawConfig::default()
        }))
        .merge(Toml::string(toml));
        let config = Config::from_figment(figment).map_err(|e| e.to_string());
        let names: Vec<(String, String, String)> = config
            .map(|c| {
                c.upstreams
                    .into_iter()
                    .map(|u| (u.name, u.label, u.issuer))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            names,
            vec![
                (
                    "google".into(),
                    "Sign in with Google".into(),
                    GOOGLE_ISSUER.into()
                ),
                (
                    "corp".into(),
                    "Sign in with Corp SSO".into(),
                    "https://sso.corp.example".into()
                ),
            ]
        );
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portcullis-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }
}
