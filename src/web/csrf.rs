//! CSRF protection for every form: a per-session token in a hidden field, and an Origin (or
//! Referer) check that refuses posts from other sites. Either failure is a 403.

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tower_sessions::Session;
use url::Url;

use super::AppError;
use crate::app::AppState;

const KEY: &str = "csrf";

const EXPIRED: &str = "This form has expired or was sent from another site. Go back, reload the \
     page and try again.";

/// The session's CSRF token, created on first use.
pub async fn token(session: &Session) -> Result<String, tower_sessions::session::Error> {
    if let Some(token) = session.get::<String>(KEY).await? {
        return Ok(token);
    }
    rotate(session).await
}

/// A fresh token, used whenever privileges change (sign-in).
pub async fn rotate(session: &Session) -> Result<String, tower_sessions::session::Error> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    session.insert(KEY, &token).await?;
    Ok(token)
}

/// Every form carries its token in a `csrf_token` field beside its own fields.
#[derive(serde::Deserialize)]
struct WithToken<T> {
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    form: T,
}

/// A form that passed both CSRF checks.
pub struct CsrfForm<T>(pub T);

impl<T> FromRequest<AppState> for CsrfForm<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !same_origin(req.headers(), &state.config.public_origin()) {
            tracing::warn!("refused a cross-site form post");
            return Err(AppError::Forbidden(EXPIRED));
        }
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(|(_, why)| AppError::Internal(anyhow::anyhow!(why)))?;
        let req = Request::from_parts(parts, body);
        let Form(WithToken { csrf_token, form }) = Form::<WithToken<T>>::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::BadRequest(
                        "The form could not be read. Go back, reload the page and try again."
                            .into(),
                    )
                }
            })?;
        let expected = session.get::<String>(KEY).await?.unwrap_or_default();
        let sent = csrf_token.as_str();
        let matches =
            !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes()));
        if !matches {
            tracing::warn!("refused a form post with a missing or wrong CSRF token");
            return Err(AppError::Forbidden(EXPIRED));
        }
        Ok(Self(form))
    }
}

/// Browsers send `Origin` with every form post (and `Referer` where it is absent). A post is
/// same-site when that origin is the public URL's, or the host the request was sent to (so the
/// server also works when reached as 127.0.0.1 rather than its public name). Clients that send
/// neither header are not browsers acting for a victim; the token still protects them.
fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    let sent = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| v.to_str().unwrap_or("null"));
    let Some(sent) = sent else { return true };
    let Ok(url) = Url::parse(sent) else {
        return false;
    };
    let origin = url.origin();
    if !origin.is_tuple() {
        return false;
    }
    if origin.ascii_serialization() == public_origin {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return false,
    };
    host.is_some_and(|host| host.eq_ignore_ascii_case(&authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                name.clone(),
                value
                    .parse()
                    .unwrap_or(header::HeaderValue::from_static("x")),
            );
        }
        map
    }

    #[test]
    fn origin_rules() {
        let public = "https://login.example.com";
        assert!(same_origin(
            &headers(&[(header::ORIGIN, "https://login.example.com")]),
            public
        ));
        assert!(same_origin(
            &headers(&[
                (header::ORIGIN, "http://127.0.0.1:8080"),
                (header::HOST, "127.0.0.1:8080")
            ]),
            public
        ));
        assert!(!same_origin(
            &headers(&[(header::ORIGIN, "https://evil.example")]),
            public
        ));
        assert!(!same_origin(&headers(&[(header::ORIGIN, "null")]), public));
        assert!(!same_origin(
            &headers(&[
                (header::REFERER, "https://evil.example/x"),
                (header::HOST, "login.example.com")
            ]),
            public
        ));
        assert!(same_origin(&headers(&[]), public));
    }
}
