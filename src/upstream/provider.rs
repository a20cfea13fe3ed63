//! One upstream OpenID provider: its discovery document and keys (fetched and cached), the
//! authorization URL, the code exchange and the ID-token checks (OIDC Core §3.1.3.7), done by
//! the `openidconnect` crate.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse,
};
use tokio::sync::RwLock;

use crate::config::UpstreamConfig;
use crate::ops::error_chain;

/// How long a discovery document and its keys are trusted before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// An ID token signed by a key we do not know may mean the provider rotated its keys: fetch
/// them again, but not more often than this.
const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to the provider, in words for the person.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the provider: {0}")]
    Unreachable(String),
    #[error("the provider refused: {0}")]
    Refused(String),
    #[error("the ID token is not valid: {0}")]
    BadIdToken(String),
}

/// The person as the provider vouched for them in a verified ID token.
#[derive(Clone, Debug)]
pub struct VerifiedPerson {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// What the browser must bring back: kept in the session between the redirect and the callback.
pub struct AuthorizationStart {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

struct Cached {
    metadata: CoreProviderMetadata,
    fetched: Instant,
}

pub struct Provider {
    pub config: UpstreamConfig,
    redirect: RedirectUrl,
    http: TracedHttp,
    cache: RwLock<Option<Cached>>,
}

/// The HTTP client for providers: sends the current trace's `traceparent` along (W3C Trace
/// Context), so a provider that traces sees its part of the sign-in in the same trace.
struct TracedHttp(openidconnect::reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for TracedHttp {
    type Error = <openidconnect::reqwest::Client as openidconnect::AsyncHttpClient<'c>>::Error;
    type Future = <openidconnect::reqwest::Client as openidconnect::AsyncHttpClient<'c>>::Future;

    fn call(&'c self, mut request: openidconnect::HttpRequest) -> Self::Future {
        crate::ops::telemetry::inject_trace(request.headers_mut());
        self.0.call(request)
    }
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

impl Provider {
    pub fn new(config: UpstreamConfig, public_url: &str) -> anyhow::Result<Arc<Self>> {
        let redirect = RedirectUrl::new(format!(
            "{}/auth/oauth/{}/callback",
            public_url.trim_end_matches('/'),
            config.name
        ))?;
        // No redirects: a token endpoint that redirects is a misconfiguration, not a detour
        // to follow with a code and a secret.
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()?;
        Ok(Arc::new(Self {
            config,
            redirect,
            http: TracedHttp(http),
            cache: RwLock::new(None),
        }))
    }

    pub fn callback_url(&self) -> &str {
        self.redirect.as_str()
    }

    /// The discovery document with its keys, from the cache when it is fresh.
    async fn metadata(
        &self,
        refetch_older_than: Duration,
    ) -> Result<CoreProviderMetadata, UpstreamError> {
        if let Some(cached) = self.cache.read().await.as_ref()
            && cached.fetched.elapsed() < refetch_older_than
        {
            return Ok(cached.metadata.clone());
        }
        let mut cache = self.cache.write().await;
        // Another request may have fetched it while this one waited for the lock.
        if let Some(cached) = cache.as_ref()
            && cached.fetched.elapsed() < refetch_older_than
        {
            return Ok(cached.metadata.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        let span = tracing::info_span!("upstream.discovery", provider = %self.config.name);
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .instrument(span)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %self.config.name, error = %error_chain(&e), "discovery failed");
                UpstreamError::Unreachable(error_chain(&e))
            })?;
        *cache = Some(Cached {
            metadata: metadata.clone(),
            fetched: Instant::now(),
        });
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Client {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(
                self.config.client_secret.expose().to_string(),
            )),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// The URL to send the browser to, with `state`, `nonce` and PKCE S256 (RFC 7636).
    pub async fn start(&self) -> Result<AuthorizationStart, UpstreamError> {
        let client = self.client(self.metadata(METADATA_TTL).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(AuthorizationStart {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code and verifies the ID token: signature against the provider's JWKS,
    /// `iss`, `aud`, `exp` and `nonce`.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<VerifiedPerson, UpstreamError> {
        let client = self.client(self.metadata(METADATA_TTL).await?);
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| UpstreamError::Refused(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()));
        let span = tracing::info_span!("upstream.token", provider = %self.config.name);
        let exchange = request.request_async(&self.http).instrument(span);
        let response = exchange.await.map_err(|e| {
            tracing::warn!(provider = %self.config.name, error = %error_chain(&e), "code exchange failed");
            match e {
                RequestTokenError::ServerResponse(response) => {
                    UpstreamError::Refused(response.error().to_string())
                }
                RequestTokenError::Request(e) => UpstreamError::Unreachable(error_chain(&e)),
                other => UpstreamError::Refused(error_chain(&other)),
            }
        })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| UpstreamError::BadIdToken("the provider sent no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let verify = |client: &Client| {
            let verifier = client.id_token_verifier().set_allowed_algs(vec![
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
                CoreJwsSigningAlgorithm::EdDsa,
            ]);
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Perhaps new keys: look again (rate-limited), then decide.
                let fresh = self.client(self.metadata(KEY_REFETCH_INTERVAL).await?);
                verify(&fresh)
            }
            other => other,
        }
        .map_err(|e| {
            tracing::warn!(provider = %self.config.name, error = %e, "ID token refused");
            UpstreamError::BadIdToken(e.to_string())
        })?;
        Ok(VerifiedPerson {
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified() == Some(true),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
        })
    }
}
