//! One node's own settings: its name, its share of the database, how it shuts down, and what
//! it allows its clients.

use std::time::Duration;

use super::{ConfigError, DatabaseUrl, RawConfig};
use crate::web::server::ConnectionLimits;

pub(super) struct NodeSettings {
    pub name: String,
    pub region: String,
    pub database_replica: Option<super::Secret>,
    pub database_max_connections: u32,
    pub shutdown_grace: Duration,
    pub connection_limits: ConnectionLimits,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    pub metrics_listen: Option<std::net::SocketAddr>,
}

pub(super) fn settings(
    raw: &RawConfig,
    database: &DatabaseUrl,
) -> Result<NodeSettings, ConfigError> {
    // Two at least: the periodic jobs' lock holds one while the jobs use another.
    if !(2..=1000).contains(&raw.database_max_connections) {
        return Err(ConfigError(format!(
            "PORTCULLIS_DATABASE_MAX_CONNECTIONS must be between 2 and 1000, got {}",
            raw.database_max_connections
        )));
    }
    let node_name = match raw.node_name.as_deref().map(str::trim) {
        None | Some("") => host_name(),
        Some(name) if name.len() <= 64 && !name.chars().any(char::is_control) => name.to_string(),
        Some(_) => {
            return Err(ConfigError(
                "PORTCULLIS_NODE_NAME must be at most 64 characters, without control \
                 characters"
                    .into(),
            ));
        }
    };
    let region = match raw.region.as_deref().map(str::trim) {
        None | Some("") => "default".to_string(),
        Some(region)
            if region.len() <= 64
                && region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            region.to_string()
        }
        Some(region) => {
            return Err(ConfigError(format!(
                "PORTCULLIS_REGION must be at most 64 letters, digits, '-', '_' or '.', got \
                 {region:?}"
            )));
        }
    };
    let database_replica = match raw.database_replica_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(url) => match database {
            DatabaseUrl::Postgres(_)
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                Some(super::Secret::new(url))
            }
            DatabaseUrl::Postgres(_) => {
                return Err(ConfigError(
                    "PORTCULLIS_DATABASE_REPLICA_URL must start with postgres://".into(),
                ));
            }
            DatabaseUrl::Sqlite(_) => {
                return Err(ConfigError(
                    "PORTCULLIS_DATABASE_REPLICA_URL needs PORTCULLIS_DATABASE_URL to be the \
                     Postgres primary it replicates; SQLite has no replicas"
                        .into(),
                ));
            }
        },
    };
    let connection_limits = connection_limits(raw)?;
    for (name, value) in [
        ("PORTCULLIS_HEADER_READ_TIMEOUT", raw.header_read_timeout),
        ("PORTCULLIS_BODY_READ_TIMEOUT", raw.body_read_timeout),
        ("PORTCULLIS_REQUEST_TIMEOUT", raw.request_timeout),
    ] {
        if value < Duration::from_secs(1) {
            return Err(ConfigError(format!("{name} must be at least 1s")));
        }
    }
    let metrics_listen = match raw.metrics_listen.trim() {
        "off" => None,
        address => Some(address.parse().map_err(|_| {
            ConfigError(format!(
                "PORTCULLIS_METRICS_LISTEN must be an address and port such as 127.0.0.1:9464, \
                 or off; got {:?}",
                raw.metrics_listen
            ))
        })?),
    };
    let shutdown_grace = raw.shutdown_grace.unwrap_or(match database {
        DatabaseUrl::Postgres(_) => Duration::from_secs(5),
        DatabaseUrl::Sqlite(_) => Duration::ZERO,
    });
    Ok(NodeSettings {
        name: node_name,
        region,
        database_replica,
        database_max_connections: raw.database_max_connections,
        shutdown_grace,
        connection_limits,
        body_read_timeout: raw.body_read_timeout,
        request_timeout: raw.request_timeout,
        metrics_listen,
    })
}

/// File descriptors kept for everything but client connections: database and Redis
/// connections, the listener, mail, files.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The connection cap: as configured, else what the open-file limit leaves after the reserve,
/// so a crowd of idle clients makes new ones wait instead of leaving the server unable to open
/// a database connection or accept at all.
fn connection_limits(raw: &RawConfig) -> Result<ConnectionLimits, ConfigError> {
    let open_files = open_file_limit();
    let fitting =
        open_files.saturating_sub(RESERVED_DESCRIPTORS + u64::from(raw.database_max_connections));
    let max_connections = match raw.max_connections {
        Some(0) => {
            return Err(ConfigError(
                "PORTCULLIS_MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        Some(n) if n as u64 > fitting => {
            return Err(ConfigError(format!(
                "PORTCULLIS_MAX_CONNECTIONS is {n}, but the open-file limit ({open_files}) \
                 leaves room for {fitting}; raise the limit (ulimit -n) or lower the setting"
            )));
        }
        Some(n) => n,
        None => fitting.clamp(16, 10_000) as usize,
    };
    Ok(ConnectionLimits {
        header_read_timeout: raw.header_read_timeout,
        max_connections,
    })
}

/// The soft limit on open files of this process (`ulimit -n`).
fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// The machine's host name (a container's is its id or pod name), `node` when unknown.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "node".into())
}
