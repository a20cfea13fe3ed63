//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! §2.3): `client_secret_basic`, `client_secret_post`, or `none` for public clients.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::OAuthError;
use super::params::Params;
use crate::app::AppState;
use crate::clients::Client;
use crate::config::{Config, SecretKey};
use crate::tokens::TokenService;

/// What client authentication needs: the clients (through the token service) and the key
/// their secrets are hashed with.
#[derive(Clone)]
pub struct ClientAuth {
    pub tokens: TokenService,
    pub config: std::sync::Arc<Config>,
}

impl axum::extract::FromRef<AppState> for ClientAuth {
    fn from_ref(state: &AppState) -> Self {
        Self {
            tokens: state.tokens.clone(),
            config: state.config.clone(),
        }
    }
}

/// HTTP Basic credentials (RFC 6749 §2.3.1: both parts are form-urlencoded first).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let malformed = || OAuthError::invalid_client("malformed Basic credentials", true);
    let parse = || -> Option<(String, String)> {
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let decode = |s: &str| -> Option<String> {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        Some((decode(id)?, decode(secret)?))
    };
    Some(parse().ok_or_else(malformed))
}

/// How the client proved who it is.
pub struct Authenticated {
    pub client: Client,
    /// False for a public client that only named itself.
    pub confidential: bool,
}

/// The client of a request (§2.3, §3.2.1).
pub async fn authenticate_client(
    tokens: &TokenService,
    secret_key: &SecretKey,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Authenticated, OAuthError> {
    let basic = basic_credentials(headers).transpose()?;
    let post = params.get("client_secret");
    let (id, secret, via_basic) = match (basic, post) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, Some(secret), true)
        }
        (None, secret) => match params.get("client_id") {
            Some(id) => (id.to_string(), secret.map(str::to_string), false),
            None => {
                return Err(OAuthError::invalid_client(
                    "client authentication is missing",
                    false,
                ));
            }
        },
    };
    let unknown = || OAuthError::invalid_client("unknown client or wrong secret", via_basic);
    let client = tokens.client(&id).await?.ok_or_else(unknown)?;
    match secret {
        Some(secret) if client.secret_matches(secret_key, &secret) => Ok(Authenticated {
            client,
            confidential: true,
        }),
        Some(_) => Err(unknown()),
        None if client.is_public() => Ok(Authenticated {
            client,
            confidential: false,
        }),
        None => Err(OAuthError::invalid_client(
            "this client must authenticate with its secret",
            false,
        )),
    }
}
