//! The token endpoint (RFC 6749 §3.2): client authentication and the grants.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::clients::{
    self, Client, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
    USER_SCOPES,
};
use super::discovery::issuer;
use super::issue;
use super::space_list;
use super::{OAuthError, TOKEN_PATH};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::crypto;
use crate::store::RefreshTokenRow;
use crate::tokens::jwt;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub fn router() -> Router<AppState> {
    Router::new().route(TOKEN_PATH, post(token))
}

/// Form parameters; RFC 6749 §3.2 forbids repeating one.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Self, OAuthError> {
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::too_large()
            } else {
                OAuthError::invalid_request("the request body could not be read")
            }
        })?;
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(OAuthError::invalid_request(
                "send the parameters as application/x-www-form-urlencoded",
            ));
        }
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(&body) {
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter {name} is repeated"
                )));
            }
        }
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is missing")))
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

/// `client_secret_basic`, `client_secret_post`, or `none` for public clients (§2.3, §3.2.1).
pub async fn authenticate_client(
    state: &AppState,
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
    let client = state
        .clients
        .get(&state.store, &id, state.clock.now())
        .await?
        .ok_or_else(unknown)?;
    match secret {
        Some(secret) if client.secret_matches(&state.config.secret_key, &secret) => {
            Ok(Authenticated {
                client,
                confidential: true,
            })
        }
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

async fn token(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&headers, body)?;
    let grant = params.require("grant_type")?;
    let known = matches!(
        grant,
        GRANT_CLIENT_CREDENTIALS | GRANT_AUTHORIZATION_CODE | GRANT_REFRESH_TOKEN
    );
    if !known {
        return Err(OAuthError::unsupported_grant_type(format!(
            "the grant type {grant} is not supported"
        )));
    }
    let auth = authenticate_client(&state, &headers, &params).await?;
    match grant {
        GRANT_AUTHORIZATION_CODE => authorization_code(&state, &meta, auth, &params).await,
        GRANT_REFRESH_TOKEN => refresh(&state, &meta, auth, &params).await,
        _ => client_credentials(&state, auth, &params).await,
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6): the code must be fresh, unused, issued to this
/// client for this redirect URI, and match the verifier.
async fn authorization_code(
    state: &AppState,
    meta: &RequestMeta,
    auth: Authenticated,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client = auth.client;
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the authorization code flow",
        ));
    }
    let code = params.require("code")?;
    let code_hash = crypto::sha256_hex(code);
    let now = state.clock.now();
    let invalid = || {
        OAuthError::invalid_grant(
            "the code is invalid, expired, already used or was issued to another client",
        )
    };
    let row = state
        .store
        .find_auth_code(&code_hash)
        .await?
        .ok_or_else(invalid)?;
    if row.client_id != client.id {
        return Err(invalid());
    }
    // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for. Checked before
    // anything else about the request, so a replay is caught whatever it carries.
    if row.used_at.is_some() || !state.store.use_auth_code(&code_hash, now).await? {
        tracing::warn!(client_id = %client.id, "an authorization code was presented twice; revoking its tokens");
        state
            .store
            .revoke_refresh_tokens_of_code(&code_hash, now)
            .await?;
        if let Some(jti) = state.store.code_access_jti(&code_hash).await? {
            state
                .store
                .revoke_access_token(&jti, now + clients::MAX_ACCESS_TTL)
                .await?;
        }
        return Err(invalid());
    }
    if row.expires_at <= now {
        return Err(invalid());
    }
    if params.get("redirect_uri") != Some(row.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&row.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if valid_verifier(verifier) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !crypto::constant_time_eq(&computed, challenge) {
                return Err(OAuthError::invalid_grant(
                    "the code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), _) => {
            return Err(OAuthError::invalid_grant(
                "a valid code_verifier is required",
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "a code_verifier was sent but no code_challenge was",
            ));
        }
        (None, None) => {}
    }
    let Some(user) = state
        .store
        .find_user_by_id(&row.user_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Err(invalid());
    };
    let scope: Vec<String> = space_list(&row.scope);
    let methods: Vec<String> = space_list(&row.amr);
    let grant = issue::Grant {
        client: &client,
        user: &user,
        scope: &scope,
        nonce: row.nonce.as_deref(),
        auth_time: row.auth_time,
        methods: &methods,
    };
    let lineage = Lineage::Code {
        code_hash: &code_hash,
    };
    match person_tokens(state, meta, &grant, user.session_epoch, lineage).await? {
        Some(body) => Ok(token_response(body)),
        None => Err(invalid()),
    }
}

/// Where a grant's refresh token comes from.
pub enum Lineage<'a> {
    /// A code exchange starts a new family.
    Code { code_hash: &'a str },
    /// A first-party API sign-in starts a new family.
    SignIn,
    /// A refresh continues the family of the token it rotates.
    Rotation {
        family_id: &'a str,
        family_created_at: i64,
        old_hash: &'a str,
    },
}

/// Access token, ID token (with `openid`, on a code exchange) and refresh token (with
/// `offline_access`, and always for the first-party API) for a person. `None` when a rotation
/// lost: the old token was used already.
pub async fn person_tokens(
    state: &AppState,
    meta: &RequestMeta,
    grant: &issue::Grant<'_>,
    session_epoch: i64,
    lineage: Lineage<'_>,
) -> Result<Option<serde_json::Value>, OAuthError> {
    let now = state.clock.now();
    let (family_id, family_created_at) = match lineage {
        Lineage::Rotation {
            family_id,
            family_created_at,
            ..
        } => (family_id.to_string(), family_created_at),
        Lineage::Code { .. } | Lineage::SignIn => (uuid::Uuid::now_v7().simple().to_string(), now),
    };
    let access = issue::access_token(state, grant, &family_id)?;
    let mut body = json!({
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.ttl,
    });
    if !grant.client.is_first_party() {
        body["scope"] = json!(grant.scope.join(" "));
    }
    // OIDC Core §12.2: a refresh response "might not contain an id_token". We leave it out:
    // it would repeat the sign-in facts of the first one and double the signing cost.
    if let Lineage::Code { .. } = lineage
        && let Some(id_token) = issue::id_token(state, grant, &access.token)?
    {
        body["id_token"] = json!(id_token);
    }
    let offline = grant.scope.iter().any(|s| s == "offline_access");
    let wants_refresh = offline || grant.client.is_first_party();
    let next = (wants_refresh && grant.client.allows_grant(GRANT_REFRESH_TOKEN)).then(|| {
        let token = crypto::random_token();
        let row = RefreshTokenRow {
            token_hash: crypto::sha256_hex(&token),
            family_id: family_id.clone(),
            client_id: grant.client.id.clone(),
            user_id: grant.user.id.clone(),
            scope: grant.scope.join(" "),
            auth_time: grant.auth_time,
            amr: grant.methods.join(" "),
            session_epoch,
            code_hash: match lineage {
                Lineage::Code { code_hash } => Some(code_hash.to_string()),
                Lineage::SignIn | Lineage::Rotation { .. } => None,
            },
            created_at: now,
            expires_at: now + grant.client.refresh_token_ttl,
            rotated_at: None,
            revoked_at: None,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            family_created_at: Some(family_created_at),
        };
        (token, row)
    });
    match lineage {
        Lineage::Code { code_hash } => {
            state
                .store
                .set_code_access_jti(code_hash, &access.jti)
                .await?;
            if let Some((_, row)) = &next {
                state.store.insert_refresh_token(row).await?;
            }
        }
        Lineage::SignIn => {
            if let Some((_, row)) = &next {
                state.store.insert_refresh_token(row).await?;
            }
        }
        // One atomic write: the old token is marked rotated and its successor stored, or
        // neither (a reuse).
        Lineage::Rotation { old_hash, .. } => {
            let row = next.as_ref().map(|(_, row)| row);
            if !state.store.rotate_refresh_token(old_hash, now, row).await? {
                return Ok(None);
            }
        }
    }
    if let Some((token, _)) = next {
        body["refresh_token"] = json!(token);
    }
    Ok(Some(body))
}

/// RFC 6749 §6 for a relying app.
async fn refresh(
    state: &AppState,
    meta: &RequestMeta,
    auth: Authenticated,
    params: &Params,
) -> Result<Response, OAuthError> {
    if !auth.client.allows_grant(GRANT_REFRESH_TOKEN) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use refresh tokens",
        ));
    }
    let token = params.require("refresh_token")?;
    let body = refresh_tokens(state, meta, &auth.client, token, params.get("scope")).await?;
    Ok(token_response(body))
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): every use returns a new refresh token; a
/// rotated token presented again revokes its whole family. There is no grace window, so two
/// concurrent refreshes with the same token end the family; clients must serialise refreshes.
/// Shared by the token endpoint and the first-party API.
pub async fn refresh_tokens(
    state: &AppState,
    meta: &RequestMeta,
    client: &Client,
    token: &str,
    requested_scope: Option<&str>,
) -> Result<serde_json::Value, OAuthError> {
    let token_hash = crypto::sha256_hex(token);
    let now = state.clock.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let (row, user) = state
        .store
        .find_refresh_token_and_holder(&token_hash)
        .await?
        .ok_or_else(invalid)?;
    if row.client_id != client.id || row.revoked_at.is_some() || row.expires_at <= now {
        return Err(invalid());
    }
    let reused = || async {
        tracing::warn!(client_id = %client.id, "a rotated refresh token was reused; revoking its family");
        state
            .store
            .revoke_refresh_family(&row.family_id, now)
            .await?;
        let event = crate::audit::Event {
            name: "refresh_token_reuse",
            actor: None,
            subject: Some(&row.user_id),
            detail: Some(format!("client {}", client.id)),
        };
        crate::audit::record(state, meta, event).await;
        Err::<serde_json::Value, OAuthError>(invalid())
    };
    if row.rotated_at.is_some() {
        return reused().await;
    }
    if user.disabled || user.session_epoch != row.session_epoch {
        state
            .store
            .revoke_refresh_family(&row.family_id, now)
            .await?;
        return Err(invalid());
    }
    let granted: Vec<String> = space_list(&row.scope);
    let scope: Vec<String> = match requested_scope {
        Some(requested) => {
            let requested: Vec<String> = space_list(requested);
            if let Some(bad) = requested.iter().find(|s| !granted.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "the scope {bad} was not granted"
                )));
            }
            requested
        }
        None => granted,
    };
    let methods: Vec<String> = space_list(&row.amr);
    let grant = issue::Grant {
        client,
        user: &user,
        scope: &scope,
        nonce: None,
        auth_time: row.auth_time,
        methods: &methods,
    };
    let lineage = Lineage::Rotation {
        family_id: &row.family_id,
        family_created_at: row.family_created_at.unwrap_or(row.created_at),
        old_hash: &token_hash,
    };
    match person_tokens(state, meta, &grant, row.session_epoch, lineage).await? {
        Some(body) => Ok(body),
        None => reused().await,
    }
}

/// The scope a request may have: every requested scope must be allowed for the client.
pub fn granted_scope<'a>(
    client: &'a Client,
    requested: Option<&'a str>,
    default: impl Fn(&str) -> bool,
) -> Result<Vec<&'a str>, OAuthError> {
    match requested {
        Some(requested) => {
            let scopes: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
            if let Some(bad) = scopes.iter().find(|s| !client.allows_scope(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "the scope {bad} is not allowed for this client"
                )));
            }
            Ok(scopes)
        }
        None => Ok(client
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| default(s))
            .collect()),
    }
}

/// RFC 6749 §4.4: a confidential client acting for itself; the token's subject is the client.
async fn client_credentials(
    state: &AppState,
    auth: Authenticated,
    params: &Params,
) -> Result<Response, OAuthError> {
    let client = auth.client;
    if !auth.confidential || !client.allows_grant(GRANT_CLIENT_CREDENTIALS) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use client_credentials",
        ));
    }
    let scopes = granted_scope(&client, params.get("scope"), |s| !USER_SCOPES.contains(&s))?;
    if let Some(user_scope) = scopes.iter().find(|s| USER_SCOPES.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "{user_scope} needs a signed-in user"
        )));
    }
    let scope = scopes.join(" ");
    let now = state.clock.now();
    let ttl = client.access_token_ttl;
    let issuer = issuer(state);
    let claims = json!({
        "iss": issuer,
        "sub": client.id,
        "aud": issuer,
        "client_id": client.id,
        "scope": scope,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid::Uuid::now_v7().simple().to_string(),
        "roles": [],
    });
    let access_token = sign_access_token(state, &claims)?;
    let mut body =
        json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": ttl });
    if !scope.is_empty() {
        body["scope"] = json!(scope);
    }
    Ok(token_response(body))
}

/// RFC 9068 access token: `typ: at+jwt`, signed with the active key.
pub fn sign_access_token(
    state: &AppState,
    claims: &serde_json::Value,
) -> Result<String, OAuthError> {
    let key = state
        .keys
        .snapshot()
        .active(state.config.signing_alg, state.clock.now())
        .ok_or_else(|| OAuthError::server_error("no active signing key"))?;
    Ok(jwt::sign(&key, "at+jwt", claims)?)
}

/// Token responses are never cached (RFC 6749 §5.1).
pub fn token_response(body: serde_json::Value) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response()
}
