//! Upstream OpenID providers from the configuration: Google from two settings, others from
//! the file.

#[allow(unused_imports)]
use super::*;

/// The Google preset (from `PORTCULLIS_GOOGLE_*`) followed by the `[[upstream]]` tables.
pub(super) fn upstreams(raw: &RawConfig) -> Result<Vec<UpstreamConfig>, ConfigError> {
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

pub(super) fn parse_issuer(value: &str) -> Option<String> {
    let value = value.trim();
    Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .map(|_| value.to_string())
}
