//! Puts the server together: state, routers of each feature, and the layers around them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::bus;
use crate::clock::Clock;
use crate::cluster::Node;
use crate::config::Config;
use crate::mail::Mailer;
use crate::ops::metrics::Metrics;
use crate::password::PasswordHasher;
use crate::sessions::{ObservedSessions, SessionBackend};
use crate::store::Store;
use crate::tokens::{Keys, TokenService, keys};
use crate::web::AppError;
use crate::web::error::not_found;
use crate::web::{headers, static_files};

/// Everything a handler may need. One `Arc`: axum clones the state for every extractor and
/// middleware of every request, and one reference count is cheaper than one per part. Some
/// parts are also sub-states (`FromRef`): a handler that needs only the token service takes
/// `State<TokenService>`.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl AppState {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

/// Sub-states: a handler or layer that needs one part takes `State<Part>`.
macro_rules! sub_state {
    ($($field:ident: $part:ty),* $(,)?) => {
        $(
            impl FromRef<AppState> for $part {
                fn from_ref(state: &AppState) -> Self {
                    state.$field.clone()
                }
            }
        )*
    };
}

sub_state!(
    config: Arc<Config>,
    store: Store,
    tokens: TokenService,
    node: Node,
    metrics: Metrics,
    clock: Clock,
);

/// The parts of the state, each cheap to clone on its own.
pub struct Parts {
    pub config: Arc<Config>,
    pub store: Store,
    pub hasher: PasswordHasher,
    pub mailer: Mailer,
    /// Issues, checks, rotates and revokes tokens; holds the signing keys and the client cache.
    pub tokens: TokenService,
    pub upstreams: crate::upstream::Upstreams,
    /// The session store, for the readiness check (the router's layer holds its own handle).
    pub sessions: SessionBackend,
    pub clock: Clock,
    /// This node's name and whether it is shutting down.
    pub node: Node,
    /// Counters, gauges and histograms for `/metrics` (off: nothing is recorded).
    pub metrics: Metrics,
    /// Builds the events written with each change (the outbox).
    pub events: crate::events::Events,
    /// The WebAuthn relying party, when passkeys are on.
    pub passkeys: crate::passkeys::Passkeys,
}

/// The running parts: state plus the session backend the router was built with.
pub struct App {
    pub state: AppState,
    pub sessions: SessionBackend,
    /// How this node hears of other nodes' changes.
    pub bus: bus::Connection,
    /// Where `/metrics` is served, bound at start so a taken port fails the start.
    metrics_listener: Option<TcpListener>,
}

impl App {
    /// Connects the database, runs migrations and prepares the session store.
    pub async fn start(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let store = Store::connect(&config.database, config.database_max_connections)
            .await
            .context("cannot open the database; check PORTCULLIS_DATABASE_URL")?;
        store.migrate().await?;
        let store = match &config.database_replica {
            Some(url) => store
                .with_replica(url.expose(), config.database_max_connections)
                .context("cannot use PORTCULLIS_DATABASE_REPLICA_URL")?,
            None => store,
        };
        let deployment =
            crate::cluster::check_secret_key(&store, &config.secret_key, clock.now()).await?;
        crate::cluster::warn_about_configuration(&config);
        for (user_id, key) in store.normalise_stored_emails(clock.now()).await? {
            tracing::warn!(
                %user_id,
                %key,
                "this account's address is another account's in normal form; both were left as \
                 they are: merge or rename one (see the README's security section)"
            );
        }
        let sessions = SessionBackend::connect(&store, config.redis_url.as_ref()).await?;
        let bus = bus::connect(
            &store,
            config.redis_url.as_ref(),
            &deployment,
            bus::Role::Server,
        )
        .await
        .context("cannot connect the change bus (Redis, else Postgres)")?;
        let metrics = match config.metrics_listen {
            Some(_) => Metrics::new(store.backend_name(), &config.region, clock.clone()),
            None => Metrics::without_prometheus(clock.clone()),
        };
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen for metrics on {address} (PORTCULLIS_METRICS_LISTEN)")
            })?),
            None => None,
        };
        let mailer = Mailer::from_config(&config, metrics.clone())?;
        keys::ensure_keys(
            &store,
            &config.secret_key,
            &[config.signing_alg],
            clock.now(),
        )
        .await
        .context("cannot prepare the token signing keys")?;
        let token_keys = Keys::default();
        token_keys
            .reload(&store, &config.secret_key)
            .await
            .context("cannot read the token signing keys; is PORTCULLIS_SECRET_KEY the one they were made with?")?;
        let upstreams = crate::upstream::Upstreams::from_config(&config)?;
        let tokens = TokenService::new(
            &config,
            store.clone(),
            token_keys,
            clock.clone(),
            metrics.clone(),
        );
        let events = crate::events::Events::from_config(&config, clock.clone());
        let passkeys = crate::passkeys::Passkeys::from_config(&config)?;
        let hasher = PasswordHasher::per_core()
            .with_queue_bound(config.password_queue_timeout)
            .observed_by(metrics.clone());
        let state = AppState::new(Parts {
            passkeys,
            node: Node::new(&config.node_name),
            upstreams,
            config: Arc::new(config),
            store,
            hasher,
            mailer,
            tokens,
            sessions: sessions.clone(),
            events,
            clock,
            metrics,
        });
        Ok(Self {
            state,
            sessions,
            bus,
            metrics_listener,
        })
    }

    /// The address `/metrics` is served on, when metrics are on.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn router(&self) -> Router {
        let config = &self.state.config;
        // `__Host-` (RFC 6265bis §4.1.3.2): over https the browser takes the cookie only with
        // Secure, Path=/ and no Domain, so no other host of the domain can set or shadow it.
        let cookie_name = if config.is_https() {
            "__Host-portcullis_session"
        } else {
            "portcullis_session"
        };
        let sessions = ObservedSessions::new(self.sessions.clone(), self.state.metrics.clone());
        let session_layer = SessionManagerLayer::new(sessions)
            .with_name(cookie_name)
            .with_path("/")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(config.is_https())
            .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
                config.session_idle_timeout.as_secs() as i64,
            )));

        // Pages use browser sessions; health checks and static files do not.
        let pages = Router::new()
            .merge(crate::home::router())
            .merge(crate::signup::router())
            .merge(crate::login::router())
            .merge(crate::account::router())
            .merge(crate::verification::router())
            .merge(crate::mfa::router())
            .merge(crate::passkeys::router())
            .merge(crate::oauth::pages_router())
            .merge(crate::password_reset::router())
            .merge(crate::upstream::router())
            .merge(crate::admin::router())
            .fallback(not_found)
            // A form post's redirect that may leave the site continues from a page of ours
            // instead (CSP form-action covers the whole redirect chain; see the module).
            .layer(axum::middleware::from_fn(
                crate::web::form_redirect::keep_form_posts_on_site,
            ))
            // Visitors' forms are signed for a cookie instead of a session row.
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                crate::web::csrf::visitor_cookie,
            ))
            .layer(session_layer);

        Router::new()
            .merge(crate::ops::router())
            .merge(crate::oauth::router())
            // The first-party API: Bearer tokens, no browser session.
            .merge(crate::api::router(config))
            .route("/static/style.css", get(static_files::style_css))
            .route("/static/passkeys.js", get(static_files::passkeys_js))
            .route("/static/favicon.svg", get(static_files::favicon_svg))
            .route("/favicon.ico", get(static_files::favicon_ico))
            .merge(pages)
            .with_state(self.state.clone())
            // Forms are small; anything larger is refused with 413 before it is parsed.
            .layer(DefaultBodyLimit::max(config.max_body_bytes))
            // A body must arrive, and a request be answered, in time (408), so slow clients
            // cannot hold a request open.
            .layer(RequestBodyTimeoutLayer::new(config.body_read_timeout))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ))
            // A declared body beyond the limit is refused before a byte of it is awaited.
            .layer(axum::middleware::from_fn_with_state(
                config.max_body_bytes,
                refuse_declared_oversize,
            ))
            // While the primary is lost, what needs it is refused at once with 503; token
            // checks go on from the region's replica (ops::primary).
            .layer(axum::middleware::from_fn_with_state(
                self.state.store.clone(),
                crate::ops::primary::refuse_what_needs_the_primary,
            ))
            // A bug in a handler becomes the designed 500 page, not a dropped connection.
            .layer(CatchPanicLayer::custom(|_| {
                AppError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
            }))
            // A draining node asks clients to open their next connection elsewhere.
            .layer(axum::middleware::from_fn_with_state(
                self.state.node.clone(),
                crate::ops::close_when_draining,
            ))
            // Every log line of a request names the node, the method, the path (never the
            // query string, which can hold one-time tokens) and the trace; the span continues
            // the caller's trace (W3C traceparent) and is exported when tracing is on.
            .layer(TraceLayer::new_for_http().make_span_with({
                let node = self.state.node.clone();
                let region = config.region.clone();
                move |request: &axum::extract::Request| {
                    let span = tracing::info_span!(
                        "request",
                        node = node.name(),
                        region = region.as_str(),
                        method = %request.method(),
                        path = request.uri().path(),
                        trace_id = tracing::field::Empty,
                    );
                    crate::ops::telemetry::continue_trace(&span, request.headers());
                    span
                }
            }))
            // Every answer counted by route template, method and status (outside the timeouts,
            // so a 408 is counted too).
            .layer(axum::middleware::from_fn_with_state(
                self.state.metrics.clone(),
                crate::ops::metrics::track_requests,
            ))
            // Behind trusted proxies, the client's address comes from X-Forwarded-For.
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(config.trusted_proxies.clone()),
                crate::web::client_ip::resolve,
            ))
            // Outermost, so every response (404s and panics included) gets the headers.
            .layer(axum::middleware::from_fn_with_state(
                config.is_https(),
                headers::security_headers,
            ))
    }

    /// Reads the signing keys again when they change (here, on another node or with the CLI),
    /// and every few seconds in case a change message was lost.
    fn spawn_key_reader(&self) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let changes = state.store.changes().clone();
            loop {
                tokio::select! {
                    () = changes.keys_changed() => {}
                    () = tokio::time::sleep(keys::READ_EVERY) => {}
                }
                let keys = state.tokens.keys();
                if let Err(e) = keys.reload(&state.store, &state.config.secret_key).await {
                    tracing::warn!(error = %e, "could not reload the signing keys");
                }
            }
        })
    }

    /// Adds this node's overview counts to the database every few seconds, and folds the
    /// metrics' histogram samples into buckets.
    fn spawn_activity_writer(&self) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::ops::activity::FLUSH_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = state.metrics.activity().flush(&state.store).await {
                    tracing::warn!(error = %e, "could not add the activity counts");
                }
                state.metrics.upkeep();
            }
        })
    }

    /// Background upkeep: the periodic pruning, on one node of a cluster at a time.
    pub fn spawn_housekeeping(&self) {
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5 * 60));
            loop {
                tick.tick().await;
                match state.store.try_lease_job("housekeeping").await {
                    Ok(Some(lease)) => {
                        prune(&state).await;
                        lease.release().await;
                    }
                    Ok(None) => tracing::debug!("another node is pruning this round"),
                    Err(e) => tracing::warn!(error = %e, "could not take the housekeeping lock"),
                }
            }
        });
    }

    /// Serves until `shutdown` completes; then answers `/ready` with 503 for the grace period
    /// (the load balancer takes the node out), stops accepting, and finishes the requests in
    /// flight.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let key_reader = self.spawn_key_reader();
        let activity = self.spawn_activity_writer();
        let deliveries = crate::events::worker::spawn(self.state.clone())?;
        let mail = crate::mail::queue::spawn(self.state.clone());
        let primary_watcher = crate::ops::primary::spawn_watcher(
            self.state.store.clone(),
            self.state.config.region.clone(),
            self.state.metrics.clone(),
        );
        let metrics_server = self.metrics_listener.take().map(|listener| {
            let router = crate::ops::metrics::router(self.state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        let node = self.state.node.clone();
        let grace = self.state.config.shutdown_grace;
        let drain = async move {
            shutdown.await;
            node.start_draining();
            if !grace.is_zero() {
                tracing::info!(?grace, "draining: /ready answers 503 before the node stops");
                tokio::time::sleep(grace).await;
            }
            tracing::info!("finishing the requests in flight");
        };
        let limits = self.state.config.connection_limits;
        crate::web::server::serve(listener, router, limits, drain).await;
        key_reader.abort();
        activity.abort();
        // Deliveries in flight keep their lease; another worker (or this one, restarted)
        // sends them again with the same id.
        deliveries.abort();
        mail.abort();
        if let Some(watcher) = primary_watcher {
            watcher.abort();
        }
        // What this node counted since the last write, so a restart loses none of it.
        if let Err(e) = self.state.metrics.activity().flush(&self.state.store).await {
            tracing::warn!(error = %e, "could not add the last activity counts");
        }
        if let Some(server) = metrics_server {
            server.abort();
        }
        self.bus.stop();
        self.state.store.close().await;
        Ok(())
    }
}

/// 413 for a `Content-Length` above the limit, in the answer format of the part of the server
/// asked (API JSON, RFC 6749 JSON, or a page).
async fn refuse_declared_oversize(
    axum::extract::State(max): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|length| length <= max as u64) {
        return next.run(request).await;
    }
    match crate::web::Surface::of(request.uri().path()) {
        crate::web::Surface::Api => crate::api::error::ApiError::too_large().into_response(),
        crate::web::Surface::Protocol => crate::oauth::OAuthError::too_large().into_response(),
        crate::web::Surface::Page => AppError::PayloadTooLarge.into_response(),
    }
}

/// Deletes what has expired: sessions, throttle events, ended sign-ins, old audit events, codes
/// and tokens.
async fn prune(state: &AppState) {
    if let Err(e) = state.sessions.delete_expired().await {
        tracing::warn!(error = %e, "could not delete expired sessions");
    }
    // Keep a day of events: the longest rate-limit window is an hour (mails).
    let now = state.clock.now();
    let window = (state.config.login_failure_window.as_secs() as i64).max(24 * 3600);
    if let Err(e) = state.store.prune_throttle_events(now - window).await {
        tracing::warn!(error = %e, "could not prune old throttle events");
    }
    let idle = state.config.session_idle_timeout.as_secs() as i64;
    let lifetime = state.config.session_max_lifetime.as_secs() as i64;
    if let Err(e) = state
        .store
        .prune_user_sessions(now - idle, now - lifetime)
        .await
    {
        tracing::warn!(error = %e, "could not prune ended sessions");
    }
    // Delivered and failed deliveries stay a week for the admin panel; events as long as a
    // delivery waits on them.
    match state.store.prune_events(now - 7 * 24 * 3600).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "forgot delivered events older than a week"),
        Err(e) => tracing::warn!(error = %e, "could not prune old events"),
    }
    match state.store.prune_mail(now - 7 * 24 * 3600).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "forgot mail sent more than a week ago"),
        Err(e) => tracing::warn!(error = %e, "could not prune old mail"),
    }
    // Other regions follow the change log within seconds; an hour covers a replica's restart.
    if let Err(e) = state.store.prune_change_log(now - 3600).await {
        tracing::warn!(error = %e, "could not prune the change log");
    }
    if let Err(e) = state.store.prune_passkey_ceremonies(now).await {
        tracing::warn!(error = %e, "could not prune expired passkey ceremonies");
    }
    // The overview shows 30 days.
    if let Err(e) = state.store.prune_activity(now - 35 * 24 * 3600).await {
        tracing::warn!(error = %e, "could not prune old activity counts");
    }
    let retention = state.config.audit_retention.as_secs() as i64;
    match state.store.prune_audit_events(now - retention).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "forgot audit events past retention"),
        Err(e) => tracing::warn!(error = %e, "could not prune old audit events"),
    }
    // Expired codes, revoked-token rows and refresh tokens: a day past the longest
    // access-token life, so nothing they could still end is alive.
    let horizon = now - crate::clients::MAX_ACCESS_TTL - 24 * 3600;
    let pruned = async {
        let codes = state.store.prune_auth_codes(horizon).await?;
        let revoked = state.store.prune_revoked_access_tokens(now).await?;
        let refresh = state.store.prune_refresh_tokens(horizon).await?;
        let one_time = state.store.prune_email_tokens(horizon).await?;
        Ok::<_, crate::store::StoreError>(codes + revoked + refresh + one_time)
    };
    match pruned.await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "forgot expired codes and tokens"),
        Err(e) => tracing::warn!(error = %e, "could not prune expired tokens"),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
