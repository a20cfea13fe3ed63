//! Webhooks as the Standard Webhooks specification has them: `webhook-id`, `webhook-timestamp`
//! and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, with the
//! secret `whsec_` + base64), two valid secrets during a rotation, and an HTTP client that
//! follows no redirects and reaches no private address unless the operator allows it (SSRF).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use url::Url;

use crate::config::SecretKey;
use crate::crypto;
use crate::store::{Store, StoreResult, WebhookEndpointRow};

use super::EventType;

/// How long the replaced secret still signs after a rotation, so receivers can switch.
pub const PREVIOUS_SECRET_VALID: Duration = Duration::from_secs(24 * 3600);
/// A receiver that has not answered within this is tried again later.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an endpoint cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "the URL must be https:// (http:// only for localhost) with a host, no user name or \
         password, and no fragment; got {0:?}"
    )]
    Url(String),
    #[error(
        "{0} is a private, loopback or link-local address; set PORTCULLIS_WEBHOOK_ALLOW_PRIVATE=true \
         to deliver to it"
    )]
    Private(IpAddr),
    #[error("unknown event type {0:?}; the types are: {1}")]
    UnknownEvent(String, String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Checks a receiver URL: https (http for localhost only), and no literal private address
/// unless allowed. Host names are checked again at every delivery, when they resolve.
pub fn parse_url(text: &str, allow_private: bool) -> Result<Url, EndpointError> {
    let problem = || EndpointError::Url(text.to_string());
    let url = Url::parse(text.trim()).map_err(|_| problem())?;
    let local = is_localhost(&url);
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && local);
    if !scheme_ok
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(problem());
    }
    if let Some(ip) = literal_ip(&url)
        && !allow_private
        && is_private(ip)
    {
        return Err(EndpointError::Private(ip));
    }
    Ok(url)
}

fn is_localhost(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Addresses a webhook must not reach by default: loopback, private (RFC 1918, RFC 4193),
/// link-local (cloud metadata lives at 169.254.169.254), shared (RFC 6598), unspecified,
/// multicast and broadcast; IPv4-mapped IPv6 addresses as their IPv4 address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The event types an endpoint asked for, as stored (`' a b '`, or `''` for all).
pub fn parse_event_filter(list: &[String]) -> Result<String, EndpointError> {
    let mut names = Vec::new();
    for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let kind = EventType::parse(item).ok_or_else(|| {
            let all: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
            EndpointError::UnknownEvent(item.to_string(), all.join(", "))
        })?;
        if !names.contains(&kind.name()) {
            names.push(kind.name());
        }
    }
    Ok(if names.is_empty() {
        String::new()
    } else {
        format!(" {} ", names.join(" "))
    })
}

/// A new `whsec_` secret: 32 random bytes, base64.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

fn seal_context(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// An added endpoint and its secret, shown once.
pub struct AddedEndpoint {
    pub id: String,
    pub secret: String,
}

/// What it takes to add an endpoint.
pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub events: &'a [String],
    pub description: Option<&'a str>,
    pub allow_private: bool,
}

pub async fn add_endpoint(
    store: &Store,
    key: &SecretKey,
    new: NewEndpoint<'_>,
    now: i64,
) -> Result<AddedEndpoint, EndpointError> {
    let url = parse_url(new.url, new.allow_private)?;
    let events = parse_event_filter(new.events)?;
    let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
    let secret = new_secret();
    let row = WebhookEndpointRow {
        id: id.clone(),
        url: url.to_string(),
        description: new
            .description
            .map(|d| d.trim().chars().take(200).collect())
            .filter(|d: &String| !d.is_empty()),
        events,
        secret: crypto::seal(key, &seal_context(&id), secret.as_bytes()),
        previous_secret: None,
        previous_secret_until: None,
        created_at: now,
    };
    store.create_webhook_endpoint(&row).await?;
    Ok(AddedEndpoint { id, secret })
}

/// Gives an endpoint a new secret; the old one keeps signing for a day. `None`: no endpoint.
pub async fn rotate_secret(
    store: &Store,
    key: &SecretKey,
    id: &str,
    now: i64,
) -> StoreResult<Option<String>> {
    let secret = new_secret();
    let sealed = crypto::seal(key, &seal_context(id), secret.as_bytes());
    let until = now + PREVIOUS_SECRET_VALID.as_secs() as i64;
    Ok(store
        .rotate_webhook_secret(id, &sealed, until)
        .await?
        .then_some(secret))
}

/// The secrets that sign now: the current one, and the previous one until it expires.
pub fn signing_secrets(
    key: &SecretKey,
    endpoint_id: &str,
    current: &str,
    previous: Option<(&str, i64)>,
    now: i64,
) -> Result<Vec<String>, crypto::DecryptError> {
    let context = seal_context(endpoint_id);
    let open = |sealed: &str| {
        crypto::open(key, &context, sealed)
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| crypto::DecryptError))
    };
    let mut secrets = vec![open(current)?];
    if let Some((sealed, until)) = previous
        && until > now
    {
        secrets.push(open(sealed)?);
    }
    Ok(secrets)
}

/// The `webhook-signature` header: `v1,<base64 HMAC-SHA256>` per secret, space-separated.
pub fn signature(secrets: &[String], id: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{id}.{timestamp}.{body}");
    secrets
        .iter()
        .filter_map(|secret| {
            let raw = STANDARD.decode(secret.trim_start_matches("whsec_")).ok()?;
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&raw).ok()?;
            mac.update(signed.as_bytes());
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Resolves host names and keeps only the addresses webhooks may reach; connecting to the
/// checked addresses (not resolving again) leaves no window for DNS rebinding.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|addr| allow_private || !is_private(addr.ip()))
                .collect();
            if allowed.is_empty() {
                let reason = if found.is_empty() {
                    format!("{host} has no address")
                } else {
                    format!(
                        "{host} resolves only to private addresses; set \
                         PORTCULLIS_WEBHOOK_ALLOW_PRIVATE=true to deliver there"
                    )
                };
                return Err(reason.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The client every webhook goes out with.
pub fn http_client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(concat!("Portcullis-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What a receiver answered: delivered on any 2xx.
pub struct Answer {
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// Posts one event, signed. A redirect is a failure (it is not followed).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    allow_private: bool,
    secrets: &[String],
    event_id: &str,
    body: &str,
) -> Answer {
    // The receiver compares the timestamp with its own clock (Standard Webhooks allows five
    // minutes), so it is the wall clock's, not the server's rule clock.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let url = match parse_url(url, allow_private) {
        Ok(url) => url,
        Err(e) => {
            return Answer {
                status: None,
                error: Some(e.to_string()),
            };
        }
    };
    let sent = client
        .post(url)
        .header("content-type", "application/cloudevents+json")
        .header("webhook-id", event_id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature(secrets, event_id, now, body))
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Answer {
            status: Some(response.status().as_u16()),
            error: None,
        },
        Ok(response) => {
            let status = response.status();
            let error = if status.is_redirection() {
                format!("answered {status} (redirects are not followed)")
            } else {
                format!("answered {status}")
            };
            Answer {
                status: Some(status.as_u16()),
                error: Some(error),
            }
        }
        Err(e) => Answer {
            status: None,
            error: Some(describe(&e)),
        },
    }
}

/// The error with its causes (reqwest's own text is often just "error sending request"), short
/// enough for the admin panel.
fn describe(error: &reqwest::Error) -> String {
    let text = if error.is_timeout() {
        "timed out".to_string()
    } else {
        crate::ops::error_chain(error)
    };
    text.chars().take(500).collect()
}
