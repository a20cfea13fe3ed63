//! CSRF protection for every form: a token in a hidden field, and an Origin (or Referer) check
//! that refuses posts from other sites. Either failure is a 403.
//!
//! A signed-in person's forms carry their session's token. A visitor's forms (sign-in, sign-up,
//! "forgot password") carry a *visitor token* instead: signed with the server key, bound to a
//! random `portcullis_csrf` cookie and expiring, so showing a form stores nothing. Before, every
//! cookieless GET of `/login` wrote a session row, and a crawler or a flood of GETs filled the
//! session store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Form, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tower_sessions::Session;
use url::Url;

use super::AppError;
use crate::app::AppState;
use crate::config::SecretKey;

const KEY: &str = "csrf";

/// A visitor token is good for this long after the form was shown.
const VISITOR_TOKEN_SECS: i64 = 2 * 3600;
const VISITOR_PREFIX: &str = "v1.";

tokio::task_local! {
    /// The visitor cookie of the request being handled (set by `visitor_cookie`), so a page
    /// can sign a form for it without the handler passing it along.
    static VISITOR: Visitor;
}

#[derive(Clone)]
struct Visitor {
    key: SecretKey,
    cookie: String,
    now: i64,
    /// A form was signed for the cookie: a new cookie is set on the answer.
    used: Arc<AtomicBool>,
}

/// The visitor cookie's name: `__Host-` over https, as for the session cookie.
pub fn visitor_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-portcullis_csrf"
    } else {
        "portcullis_csrf"
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        // Ours are 43 characters of base64url; anything else is replaced.
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn new_cookie_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn visitor_signature(key: &SecretKey, cookie: &str, issued_at: i64) -> String {
    crate::crypto::keyed_hash(key, &format!("csrf-visitor\0{cookie}\0{issued_at}"))
}

/// Pages for people: reads (or makes) the visitor cookie for the request, and sets it on the
/// answer when a form was signed for a new one.
pub async fn visitor_cookie(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let https = state.config.is_https();
    let name = visitor_cookie_name(https);
    let (cookie, fresh) = match cookie_value(request.headers(), name) {
        Some(value) => (value.to_string(), false),
        None => (new_cookie_value(), true),
    };
    let visitor = Visitor {
        key: state.config.secret_key.clone(),
        cookie,
        now: state.clock.now(),
        used: Arc::default(),
    };
    let used = Arc::clone(&visitor.used);
    let value = visitor.cookie.clone();
    let mut response = VISITOR.scope(visitor, next.run(request)).await;
    if fresh && used.load(Ordering::Relaxed) {
        let secure = if https { "; Secure" } else { "" };
        let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}");
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The token for a form shown to someone who is not signed in: the session's, if it has one,
/// else a visitor token (nothing is stored). Outside a page request, the session's.
pub async fn form_token(session: &Session) -> Result<String, tower_sessions::session::Error> {
    if let Some(token) = session.get::<String>(KEY).await? {
        return Ok(token);
    }
    let visitor = VISITOR.try_with(|v| {
        v.used.store(true, Ordering::Relaxed);
        format!(
            "{VISITOR_PREFIX}{}.{}",
            v.now,
            visitor_signature(&v.key, &v.cookie, v.now)
        )
    });
    match visitor {
        Ok(token) => Ok(token),
        Err(_) => rotate(session).await,
    }
}

/// Whether `sent` is a visitor token signed for the request's cookie and not expired.
fn visitor_token_is_valid(state: &AppState, headers: &HeaderMap, sent: &str) -> bool {
    let Some(rest) = sent.strip_prefix(VISITOR_PREFIX) else {
        return false;
    };
    let Some((issued_at, signature)) = rest.split_once('.') else {
        return false;
    };
    let Ok(issued_at) = issued_at.parse::<i64>() else {
        return false;
    };
    let Some(cookie) = cookie_value(headers, visitor_cookie_name(state.config.is_https())) else {
        return false;
    };
    let age = state.clock.now() - issued_at;
    (0..=VISITOR_TOKEN_SECS).contains(&age)
        && crate::crypto::constant_time_eq(
            signature,
            &visitor_signature(&state.config.secret_key, cookie, issued_at),
        )
}

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
        let headers = parts.headers.clone();
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
        let matches_session =
            !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes()));
        // A visitor token only where no one is signed in: signing in starts the session's own.
        let matches_visitor = || async {
            Ok::<_, AppError>(
                !super::auth::is_signed_in(&session).await?
                    && visitor_token_is_valid(state, &headers, sent),
            )
        };
        if !matches_session && !matches_visitor().await? {
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
