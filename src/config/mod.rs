//! Configuration: built-in defaults, then an optional TOML file, then `PORTCULLIS_*` environment
//! variables (each layer overrides the one before). Invalid values stop start-up with a message
//! that names the setting and says what to change.

mod node;
mod passkeys;
mod raw;
mod secrets;
mod upstreams;

pub use passkeys::PasskeySettings;
pub use raw::{RawConfig, RawUpstream, StringList};
use secrets::load_secret_key;
pub use secrets::{Secret, SecretKey, redact_url};
use upstreams::upstreams;

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

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub database_max_connections: u32,
    /// The region's read replica of `database` (Postgres only).
    pub database_replica: Option<Secret>,
    pub node_name: String,
    pub region: String,
    pub shutdown_grace: Duration,
    pub connection_limits: crate::web::server::ConnectionLimits,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    pub public_url: Url,
    pub listen: SocketAddr,
    /// Where Prometheus scrapes `/metrics`; `None`: metrics are off (nothing is recorded).
    pub metrics_listen: Option<SocketAddr>,
    pub redis_url: Option<Secret>,
    pub secret_key: SecretKey,
    pub session_idle_timeout: Duration,
    pub session_max_lifetime: Duration,
    pub max_body_bytes: usize,
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    /// How long a password check may wait for a hashing worker (then 503).
    pub password_queue_timeout: Duration,
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    pub require_verified_email: bool,
    /// Admins without a second factor are sent to set one up before the panel opens.
    pub admin_require_second_factor: bool,
    pub totp_issuer: String,
    /// Whether passkeys are offered, and for which relying-party id.
    pub passkeys: PasskeySettings,
    pub signing_alg: crate::tokens::SigningAlg,
    pub upstreams: Vec<UpstreamConfig>,
    /// Serialised origins (`https://app.example`), exactly as browsers send them.
    pub cors_allowed_origins: Vec<String>,
    pub signup_max_per_ip: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub audit_retention: Duration,
    pub api_access_token_lifetime: Duration,
    pub api_refresh_token_lifetime: Duration,
    pub events: EventSettings,
}

/// Which events are written and where they go.
#[derive(Clone, Debug)]
pub struct EventSettings {
    pub enabled: bool,
    pub sign_in_events: bool,
    pub webhook_allow_private: bool,
    pub nats_url: Option<Secret>,
    pub max_age: Duration,
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
            ("PORTCULLIS_EVENT_MAX_AGE", raw.event_max_age),
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
        let nats_url = match raw.nats_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) if url.starts_with("nats://") || url.starts_with("tls://") => {
                Some(Secret::new(url))
            }
            Some(url) => {
                return Err(ConfigError(format!(
                    "PORTCULLIS_NATS_URL (nats_url) must start with nats:// or tls://, got {:?}",
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

        let secret_key = load_secret_key(&raw, matches!(database, DatabaseUrl::Postgres(_)))?;
        let node = node::settings(&raw, &database)?;
        let upstreams = upstreams(&raw)?;
        let passkeys = passkeys::settings(&raw, &public_url)?;

        Ok(Self {
            data_dir: raw.data_dir,
            database,
            database_max_connections: node.database_max_connections,
            database_replica: node.database_replica,
            node_name: node.name,
            region: node.region,
            shutdown_grace: node.shutdown_grace,
            connection_limits: node.connection_limits,
            body_read_timeout: node.body_read_timeout,
            request_timeout: node.request_timeout,
            public_url,
            listen,
            metrics_listen: node.metrics_listen,
            redis_url,
            secret_key,
            session_idle_timeout: raw.session_idle_timeout,
            session_max_lifetime: raw.session_max_lifetime,
            max_body_bytes: raw.max_body_bytes,
            login_max_failures_per_account: raw.login_max_failures_per_account,
            login_max_failures_per_ip: raw.login_max_failures_per_ip,
            login_failure_window: raw.login_failure_window,
            password_queue_timeout: raw.password_queue_timeout,
            smtp_url,
            mail_from,
            require_verified_email: raw.require_verified_email,
            admin_require_second_factor: raw.admin_require_second_factor,
            totp_issuer,
            passkeys,
            signing_alg,
            upstreams,
            cors_allowed_origins,
            signup_max_per_ip: raw.signup_max_per_ip,
            trusted_proxies,
            audit_retention: raw.audit_retention,
            api_access_token_lifetime: raw.api_access_token_lifetime,
            api_refresh_token_lifetime: raw.api_refresh_token_lifetime,
            events: EventSettings {
                enabled: raw.events_enabled,
                sign_in_events: raw.sign_in_events,
                webhook_allow_private: raw.webhook_allow_private,
                nats_url,
                max_age: raw.event_max_age,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let db = DatabaseUrl::Postgres(Secret::new("postgres://app:hunter2@db/portcullis"));
        let shown = format!(
            "{db:?} {:?} {:?}",
            Secret::new("s3cret"),
            SecretKey::from_bytes([7; 32])
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
    fn cluster_settings_have_defaults_by_backend_and_bounds() {
        let base = || RawConfig {
            data_dir: tempfile_dir(),
            secret_key: Some(URL_SAFE_NO_PAD.encode([1u8; 32])),
            ..RawConfig::default()
        };
        let sqlite = Config::validate(base()).map_err(|e| e.to_string());
        let sqlite = sqlite
            .as_ref()
            .map(|c| (c.shutdown_grace, c.database_max_connections));
        assert_eq!(sqlite, Ok((Duration::ZERO, 10)));
        let postgres = Config::validate(RawConfig {
            database_url: Some("postgres://db/portcullis".into()),
            node_name: Some("eu-1".into()),
            ..base()
        })
        .map_err(|e| e.to_string());
        let postgres = postgres
            .as_ref()
            .map(|c| (c.shutdown_grace, c.node_name.as_str()));
        assert_eq!(postgres, Ok((Duration::from_secs(5), "eu-1")));
        let one = Config::validate(RawConfig {
            database_max_connections: 1,
            ..base()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(one.contains("PORTCULLIS_DATABASE_MAX_CONNECTIONS"), "{one}");
        let keyless = Config::validate(RawConfig {
            database_url: Some("postgres://db/portcullis".into()),
            secret_key: None,
            ..base()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            keyless.contains("must be given the same secret key"),
            "{keyless}"
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
