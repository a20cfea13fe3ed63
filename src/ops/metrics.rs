//! Prometheus metrics, served on their own listener (`PORTCULLIS_METRICS_LISTEN`), never on the
//! public one.
//!
//! Each app has its own recorder (no global one), so servers that share a process — the tests —
//! do not share counters. Every event has one typed method here, so names and labels follow
//! Prometheus conventions in one place: base units (`_seconds`), `_total` on counters, and only
//! bounded label values (route templates, never raw paths, addresses or ids). With metrics off
//! nothing is recorded at all.
//!
//! The same typed methods count, per hour, what the admin overview charts (`ops::activity`):
//! that part is on whether or not Prometheus is.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::activity::Activity;
use crate::app::AppState;
use crate::clock::Clock;

const HTTP_REQUESTS: &str = "portcullis_http_requests_total";
const HTTP_DURATION: &str = "portcullis_http_request_duration_seconds";
const SIGN_INS: &str = "portcullis_sign_ins_total";
const SECOND_FACTORS: &str = "portcullis_second_factor_checks_total";
const THROTTLED: &str = "portcullis_throttle_refusals_total";
const TOKENS_ISSUED: &str = "portcullis_tokens_issued_total";
const REFRESH_REUSE: &str = "portcullis_refresh_token_reuse_detected_total";
const REVOCATIONS: &str = "portcullis_token_revocations_total";
const HASH_QUEUE: &str = "portcullis_password_hash_queue_depth";
const HASH_DURATION: &str = "portcullis_password_hash_duration_seconds";
const MAIL_SENT: &str = "portcullis_mail_sent_total";
const MAIL_FAILED: &str = "portcullis_mail_failures_total";
const EVENT_DELIVERIES: &str = "portcullis_event_deliveries_total";
const DB_CONNECTIONS: &str = "portcullis_database_connections";
const DB_ERRORS: &str = "portcullis_database_errors_total";
const SESSION_ERRORS: &str = "portcullis_session_store_errors_total";
const KEY_AGE: &str = "portcullis_signing_key_age_seconds";
const BUILD_INFO: &str = "portcullis_build_info";
const PRIMARY_WRITABLE: &str = "portcullis_database_primary_writable";

/// What each metric means, for the `# HELP` lines.
const DESCRIPTIONS: &[(&str, Option<Unit>, &str)] = &[
    (
        HTTP_REQUESTS,
        None,
        "HTTP requests answered, by route template, method and status.",
    ),
    (
        HTTP_DURATION,
        Some(Unit::Seconds),
        "Time to answer an HTTP request.",
    ),
    (
        SIGN_INS,
        None,
        "Sign-in attempts by method and result (success, failure, throttled).",
    ),
    (
        SECOND_FACTORS,
        None,
        "Second-step code checks by method and result.",
    ),
    (
        THROTTLED,
        None,
        "Attempts refused by a rate limit, by limit.",
    ),
    (
        TOKENS_ISSUED,
        None,
        "Token responses issued, by grant type.",
    ),
    (
        REFRESH_REUSE,
        None,
        "Rotated refresh tokens presented again (the family was revoked).",
    ),
    (REVOCATIONS, None, "Tokens revoked, by kind."),
    (HASH_QUEUE, None, "Password hashes waiting for a worker."),
    (
        HASH_DURATION,
        Some(Unit::Seconds),
        "Time to compute one argon2id hash on a worker.",
    ),
    (
        MAIL_SENT,
        None,
        "Mails handed to the transport (smtp, files).",
    ),
    (
        MAIL_FAILED,
        None,
        "Mails the transport refused (smtp, files).",
    ),
    (
        EVENT_DELIVERIES,
        None,
        "Event delivery attempts by sink (webhook, nats) and outcome (delivered, retry, failed).",
    ),
    (
        DB_CONNECTIONS,
        None,
        "Database pool connections by state (in_use, idle).",
    ),
    (
        DB_ERRORS,
        None,
        "Requests answered with a 5xx because of a database error.",
    ),
    (
        SESSION_ERRORS,
        None,
        "Session store operations that failed.",
    ),
    (
        KEY_AGE,
        Some(Unit::Seconds),
        "Seconds since the current signing key became active.",
    ),
    (
        BUILD_INFO,
        None,
        "Always 1: the version, the storage backend and the region as labels.",
    ),
    (
        PRIMARY_WRITABLE,
        None,
        "1 while the primary database takes writes; 0 while it is lost or read-only (writes \
         are refused with 503, token checks go on from the region's replica).",
    ),
];

/// Every metric the server exports (dashboards and alert rules may use no other).
pub fn names() -> impl Iterator<Item = &'static str> {
    DESCRIPTIONS.iter().map(|(name, _, _)| *name)
}

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The app's metrics; cheap to clone. With Prometheus off, only the overview's counts are kept.
#[derive(Clone, Default)]
pub struct Metrics {
    prometheus: Option<Arc<Inner>>,
    activity: Activity,
    clock: Clock,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The request series' handles by route, then method and status: the hot path finds them
    /// without building a key or allocating (it halved the cost of metrics on fast endpoints).
    requests: RwLock<HashMap<String, SeriesByAnswer>>,
}

/// A route's series by method and status.
type SeriesByAnswer = HashMap<(&'static str, StatusCode), RequestSeries>;

#[derive(Clone)]
struct RequestSeries {
    count: metrics::Counter,
    duration: metrics::Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_on() {
            "Metrics(on)"
        } else {
            "Metrics(off)"
        })
    }
}

/// Labels are static names with bounded values.
type Labels<'a> = &'a [(&'static str, &'a str)];

impl Metrics {
    /// Prometheus off; the overview's counts by the system clock.
    pub fn off() -> Self {
        Self::default()
    }

    /// The overview's counts only, by `clock`.
    pub fn without_prometheus(clock: Clock) -> Self {
        Self {
            prometheus: None,
            activity: Activity::default(),
            clock,
        }
    }

    /// A fresh recorder, its histograms with buckets in seconds.
    pub fn new(backend: &str, region: &str, clock: Clock) -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS);
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            // Only an empty bucket list is refused; ours is not empty.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        for (name, unit, help) in DESCRIPTIONS {
            recorder.describe_counter((*name).into(), *unit, (*help).into());
        }
        let handle = recorder.handle();
        let metrics = Self {
            prometheus: Some(Arc::new(Inner {
                recorder,
                handle,
                requests: RwLock::default(),
            })),
            activity: Activity::default(),
            clock,
        };
        metrics.gauge(
            BUILD_INFO,
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("backend", backend),
                ("region", region),
            ],
            1.0,
        );
        metrics
    }

    /// Whether the primary database takes writes, as the watcher last found.
    pub fn primary_writable(&self, writable: bool) {
        self.gauge(PRIMARY_WRITABLE, &[], if writable { 1.0 } else { 0.0 });
    }

    pub fn is_on(&self) -> bool {
        self.prometheus.is_some()
    }

    /// The counts the admin overview shows.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    fn chart(&self, kind: &'static str, label: &'static str) {
        self.activity.add(self.clock.now(), kind, label);
    }

    fn key(name: &'static str, labels: Labels<'_>) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    fn count(&self, name: &'static str, labels: Labels<'_>) {
        if let Some(inner) = &self.prometheus {
            let metadata = metadata();
            inner
                .recorder
                .register_counter(&Self::key(name, labels), &metadata)
                .increment(1);
        }
    }

    fn gauge(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        if let Some(inner) = &self.prometheus {
            let metadata = metadata();
            inner
                .recorder
                .register_gauge(&Self::key(name, labels), &metadata)
                .set(value);
        }
    }

    fn observe(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        if let Some(inner) = &self.prometheus {
            let metadata = metadata();
            inner
                .recorder
                .register_histogram(&Self::key(name, labels), &metadata)
                .record(value);
        }
    }

    pub fn http_request(&self, route: &str, method: &Method, status: StatusCode, seconds: f64) {
        let Some(inner) = &self.prometheus else {
            return;
        };
        // Only the standard methods: any other name a client sends adds no series.
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            _ => "other",
        };
        let known = inner
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|by_status| by_status.get(&(method, status)))
            .cloned();
        let series = match known {
            Some(series) => series,
            None => {
                let labels = [
                    ("route", route),
                    ("method", method),
                    ("status", status.as_str()),
                ];
                let metadata = metadata();
                let series = RequestSeries {
                    count: inner
                        .recorder
                        .register_counter(&Self::key(HTTP_REQUESTS, &labels), &metadata),
                    duration: inner
                        .recorder
                        .register_histogram(&Self::key(HTTP_DURATION, &labels), &metadata),
                };
                inner
                    .requests
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(route.to_string())
                    .or_default()
                    .insert((method, status), series.clone());
                series
            }
        };
        series.count.increment(1);
        series.duration.record(seconds);
    }

    /// Folds recorded histogram samples into their buckets; run every few seconds, so memory
    /// stays bounded when no one scrapes.
    pub fn upkeep(&self) {
        if let Some(inner) = &self.prometheus {
            inner.handle.run_upkeep();
        }
    }

    /// `method`: password, upstream; `result`: success, failure, throttled.
    pub fn sign_in(&self, method: &str, result: &str) {
        self.count(SIGN_INS, &[("method", method), ("result", result)]);
    }

    /// `method`: totp, email, recovery; `result`: success, failure, rejected (expired or
    /// replayed), throttled.
    pub fn second_factor(&self, method: &'static str, result: &str) {
        self.count(SECOND_FACTORS, &[("method", method), ("result", result)]);
        if result == "success" {
            self.chart("second_factor", method);
        }
    }

    pub fn throttled(&self, limit: &'static str) {
        self.count(THROTTLED, &[("limit", limit)]);
        self.chart("throttled", limit);
    }

    pub fn token_issued(&self, grant_type: &'static str) {
        self.count(TOKENS_ISSUED, &[("grant_type", grant_type)]);
        self.chart("token", grant_type);
    }

    /// An audit event was recorded (the overview charts sign-ins and failures from these).
    pub fn audit_event(&self, name: &'static str) {
        self.chart("event", name);
    }

    pub fn refresh_reuse_detected(&self) {
        self.count(REFRESH_REUSE, &[]);
    }

    /// `kind`: refresh_token, access_token, sign_in (a whole family).
    pub fn revoked(&self, kind: &str) {
        self.count(REVOCATIONS, &[("kind", kind)]);
    }

    pub fn password_hashed(&self, seconds: f64) {
        self.observe(HASH_DURATION, &[], seconds);
    }

    pub fn mail(&self, transport: &str, sent: bool) {
        let name = if sent { MAIL_SENT } else { MAIL_FAILED };
        self.count(name, &[("transport", transport)]);
    }

    /// One attempt to deliver an event: `outcome` is delivered, retry or failed (given up).
    pub fn event_delivery(&self, sink: &'static str, outcome: &'static str) {
        self.count(EVENT_DELIVERIES, &[("sink", sink), ("outcome", outcome)]);
    }

    pub fn database_error(&self) {
        self.count(DB_ERRORS, &[]);
    }

    pub fn session_store_error(&self) {
        self.count(SESSION_ERRORS, &[]);
    }

    /// The gauges read at scrape time, then the text exposition format.
    fn render(&self, state: &AppState) -> Option<String> {
        let inner = self.prometheus.as_ref()?;
        let (in_use, idle) = state.store.pool_connections();
        self.gauge(DB_CONNECTIONS, &[("state", "in_use")], f64::from(in_use));
        self.gauge(DB_CONNECTIONS, &[("state", "idle")], f64::from(idle));
        self.gauge(HASH_QUEUE, &[], state.hasher.queue_depth() as f64);
        let now = state.clock.now();
        let active = state
            .tokens
            .keys()
            .snapshot()
            .active(state.tokens.signing_alg(), now);
        if let Some(key) = active {
            self.gauge(KEY_AGE, &[], (now - key.activates_at) as f64);
        }
        // Drains histogram samples into their buckets, so memory stays bounded.
        inner.handle.run_upkeep();
        let mut out = Vec::new();
        inner.handle.render_to_write(&mut out).ok()?;
        String::from_utf8(out).ok()
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, None)
}

/// The metrics listener's only route.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<AppState>) -> Response {
    match state.metrics.render(&state) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are off\n").into_response(),
    }
}

/// Marks an answer that failed on a database error (set by the error types on their 5xx
/// answers), for `portcullis_database_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseFailure;

/// Whether the database is among the causes of a failure.
pub fn caused_by_database(cause: &anyhow::Error) -> bool {
    cause
        .chain()
        .any(|e| e.is::<sqlx::Error>() || e.is::<crate::store::StoreError>())
}

/// Puts the mark on `response` when the failure was the database's.
pub fn mark_failure(response: &mut Response, database: bool) {
    if database {
        response.extensions_mut().insert(DatabaseFailure);
    }
}

/// Counts every answer by route template (`MatchedPath`; `unmatched` for the 404 fallback, so a
/// scan of random paths adds one series, not thousands), method and status, with its duration.
pub async fn track_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    if !metrics.is_on() {
        return next.run(request).await;
    }
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    if response.extensions().get::<DatabaseFailure>().is_some() {
        metrics.database_error();
    }
    let seconds = started.elapsed().as_secs_f64();
    metrics.http_request(&route, &method, response.status(), seconds);
    response
}
