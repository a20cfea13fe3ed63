//! A small round-robin HTTP balancer, as an operator puts in front of the nodes: it checks each
//! node's `/ready` every 100 ms and sends nothing to a node that is not ready, passes cookies
//! and redirects through untouched, adds `X-Forwarded-For`, and tries the next node when one
//! refuses the connection (the request never reached it). Each answer says which node served
//! it (`x-served-by`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

pub const SERVED_BY: &str = "x-served-by";

pub struct Proxy {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
    checker: tokio::task::JoinHandle<()>,
    state: Arc<Balancer>,
}

struct Balancer {
    backends: Vec<Backend>,
    next: AtomicUsize,
    client: reqwest::Client,
}

struct Backend {
    url: String,
    ready: AtomicBool,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.checker.abort();
    }
}

impl Proxy {
    /// Serves on `listener`, balancing over `backends` (base URLs).
    pub fn start(listener: TcpListener, backends: Vec<String>) -> Self {
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let state = Arc::new(Balancer {
            backends: backends
                .into_iter()
                .map(|url| Backend {
                    url,
                    ready: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicUsize::new(0),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("proxy client"),
        });
        let checker = tokio::spawn(check_readiness(state.clone()));
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("proxy serves");
        });
        Self {
            url,
            task,
            checker,
            state,
        }
    }

    /// Whether the balancer currently sends requests to node `i`.
    pub fn is_ready(&self, i: usize) -> bool {
        self.state.backends[i].ready.load(Ordering::Acquire)
    }
}

async fn check_readiness(state: Arc<Balancer>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("health client");
    loop {
        for backend in &state.backends {
            let ready = client
                .get(format!("{}/ready", backend.url))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            backend.ready.store(ready, Ordering::Release);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Headers that belong to one connection (RFC 9110 §7.6.1), not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

async fn forward(
    State(state): State<Arc<Balancer>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let count = state.backends.len();
    for _ in 0..count {
        let i = state.next.fetch_add(1, Ordering::Relaxed) % count;
        let backend = &state.backends[i];
        if !backend.ready.load(Ordering::Acquire) {
            continue;
        }
        let mut outgoing = state
            .client
            .request(parts.method.clone(), format!("{}{path}", backend.url))
            .header("x-forwarded-for", peer.ip().to_string())
            .body(body.clone());
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) && name.as_str() != "x-forwarded-for" {
                outgoing = outgoing.header(name, value);
            }
        }
        match outgoing.send().await {
            Ok(answer) => return relay(answer, i).await,
            // Refused: the node is gone, and the request never reached it.
            Err(e) if e.is_connect() => backend.ready.store(false, Ordering::Release),
            Err(e) => {
                return (StatusCode::BAD_GATEWAY, format!("node {i}: {e}")).into_response();
            }
        }
    }
    (StatusCode::SERVICE_UNAVAILABLE, "no node is ready").into_response()
}

async fn relay(answer: reqwest::Response, node: usize) -> Response {
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("node {node}: {e}")).into_response();
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response.headers_mut().insert(
        SERVED_BY,
        header::HeaderValue::from_str(&node.to_string()).expect("a number is a header value"),
    );
    response
}
