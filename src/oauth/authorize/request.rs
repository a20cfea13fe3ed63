//! Step one of an authorization request: what it says, checked. Until the client and its
//! redirect URI hold, a refusal is a page; after that it goes back to the app (§4.1.2.1).

use std::collections::HashMap;

use super::AuthRequest;
use crate::app::AppState;
use crate::clients::{Client, GRANT_AUTHORIZATION_CODE};
use crate::input::{space_list, valid_s256_challenge};
use crate::oauth::params::check_resources;
use crate::web::AppError;

/// What the request asks of the person's sign-in (OIDC Core §3.1.2.1).
pub(super) struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

/// The parameters as sent: each once (RFC 6749 §3.1), except RFC 8707 `resource`.
pub(super) struct Query {
    pub values: HashMap<String, String>,
    pub resources: Vec<String>,
    pub repeated: Option<String>,
    /// In order, to send the person back here after signing in.
    pub pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(text: &[u8]) -> Self {
        let mut query = Query {
            values: HashMap::new(),
            resources: Vec::new(),
            repeated: None,
            pairs: Vec::new(),
        };
        for (name, value) in url::form_urlencoded::parse(text) {
            query.pairs.push((name.to_string(), value.to_string()));
            if name == "resource" {
                query.resources.push(value.into_owned());
            } else if query
                .values
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                query.repeated.get_or_insert_with(|| name.into_owned());
            }
        }
        query
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Parameters stored with a pending request and sent back to the app.
const ECHOED_PARAMETERS: [&str; 3] = ["state", "nonce", "login_hint"];
const MAX_ECHOED_LEN: usize = 1024;

/// Why a request was refused.
pub(super) enum Refusal {
    /// Before the client and redirect URI hold: a page, never a redirect.
    Page(&'static str),
    /// Sent back to the app (§4.1.2.1).
    ToApp {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// Checks the request. The outer error is the server's; the inner, the request's.
pub(super) async fn parse(
    state: &AppState,
    query: &Query,
) -> Result<Result<(Client, AuthRequest, Prompt), Refusal>, AppError> {
    // 1. Client and redirect URI: until both check out, a page and never a redirect.
    if let Some(name @ ("client_id" | "redirect_uri")) = query.repeated.as_deref() {
        return Ok(Err(Refusal::Page(if name == "client_id" {
            "The app named itself twice (client_id is repeated)."
        } else {
            "The app gave two return addresses (redirect_uri is repeated), so we stopped here."
        })));
    }
    let Some(client_id) = query.get("client_id") else {
        return Ok(Err(Refusal::Page(
            "The app did not say who it is (client_id is missing).",
        )));
    };
    // The token endpoint's client cache: a client change anywhere drops it at once.
    let Some(client) = state.tokens.client(client_id).await? else {
        return Ok(Err(Refusal::Page(
            "The app that sent you here is not registered with this server.",
        )));
    };
    let mut scope = space_list(query.get("scope").unwrap_or(""));
    // A scope named twice is granted once.
    let mut seen = std::collections::HashSet::new();
    scope.retain(|s| seen.insert(s.clone()));
    let openid = scope.iter().any(|s| s == "openid");
    let redirect_uri = match query.get("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        // RFC 6749 §3.1.2.3 allows leaving it out with one registered URI; OIDC Core
        // §3.1.2.1 requires it of every OpenID request.
        None if client.redirect_uris.len() == 1 && !openid => client.redirect_uris[0].clone(),
        None if openid => {
            return Ok(Err(Refusal::Page(
                "The app did not say where to send you back (redirect_uri is missing).",
            )));
        }
        _ => {
            return Ok(Err(Refusal::Page(
                "The app asked to send you back to an address it has not registered, so we stopped here.",
            )));
        }
    };
    // Values kept in the session and echoed back have a bound; an over-long `state` is not
    // echoed either.
    let too_long = ECHOED_PARAMETERS
        .iter()
        .find(|name| query.get(name).is_some_and(|v| v.len() > MAX_ECHOED_LEN));
    let state_echo = query
        .get("state")
        .filter(|s| s.len() <= MAX_ECHOED_LEN)
        .map(str::to_string);
    let refuse = |error: &'static str, description: String| {
        Ok(Err(Refusal::ToApp {
            redirect_uri: redirect_uri.clone(),
            state: state_echo.clone(),
            error,
            description,
        }))
    };
    if let Some(name) = too_long {
        return refuse(
            "invalid_request",
            format!("the parameter {name} is longer than {MAX_ECHOED_LEN} characters"),
        );
    }

    // 2. From here on, errors go back to the app (§4.1.2.1).
    if let Some(name) = &query.repeated {
        return refuse(
            "invalid_request",
            format!("the parameter {name} is repeated"),
        );
    }
    if query.get("response_type") != Some("code") {
        return refuse(
            "unsupported_response_type",
            "only response_type=code is supported".into(),
        );
    }
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return refuse(
            "unauthorized_client",
            "this client may not use the authorization code flow".into(),
        );
    }
    if query.get("request").is_some() || query.get("request_uri").is_some() {
        return refuse(
            "request_not_supported",
            "request objects are not supported".into(),
        );
    }
    if let Some(bad) = scope.iter().find(|s| !client.allows_scope(s)) {
        return refuse(
            "invalid_scope",
            format!("the scope {bad} is not allowed for this client"),
        );
    }
    let resources = match check_resources(query.resources.clone()) {
        Ok(resources) => resources,
        Err(message) => return refuse("invalid_target", message),
    };
    if let Some(bad) = client.unknown_resource(&resources) {
        return refuse(
            "invalid_target",
            format!("the resource {bad} is not allowed for this client"),
        );
    }
    let code_challenge = match (
        query.get("code_challenge"),
        query.get("code_challenge_method"),
    ) {
        (Some(challenge), Some("S256")) if valid_s256_challenge(challenge) => {
            Some(challenge.to_string())
        }
        (Some(_), Some("S256")) => {
            return refuse(
                "invalid_request",
                "code_challenge must be 43 characters of base64url".into(),
            );
        }
        (Some(_), _) => {
            return refuse(
                "invalid_request",
                "code_challenge_method must be S256".into(),
            );
        }
        (None, _) if client.is_public() => {
            return refuse(
                "invalid_request",
                "PKCE (code_challenge with S256) is required for this client".into(),
            );
        }
        (None, _) => None,
    };
    let prompts = space_list(query.get("prompt").unwrap_or(""));
    let has = |p: &str| prompts.iter().any(|v| v == p);
    if has("none") && prompts.len() > 1 {
        return refuse("invalid_request", "prompt=none cannot be combined".into());
    }
    let max_age = match query.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => {
            return refuse(
                "invalid_request",
                "max_age must be a number of seconds".into(),
            );
        }
    };
    let prompt = Prompt {
        none: has("none"),
        login: has("login"),
        consent: has("consent"),
        max_age,
        login_hint: query.get("login_hint").map(str::to_string),
    };
    let request = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scope,
        resources,
        state: query.get("state").map(str::to_string),
        nonce: query.get("nonce").map(str::to_string),
        code_challenge,
    };
    Ok(Ok((client, request, prompt)))
}
