//! `/admin/webhooks`: the webhook endpoints (added with `portcullis webhook add`), each with its
//! recent deliveries — state, attempts, the last answer or error — and a retry for one that
//! failed or waits.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use tower_sessions::Session;

use super::{Admin, AdminAction};
use crate::account::format_time;
use crate::app::AppState;
use crate::web::flash::Flash;
use crate::web::{AppError, CsrfForm, Layout};

/// Deliveries shown per endpoint.
const RECENT: i64 = 20;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/webhooks", get(list)).route(
        "/admin/webhooks/{endpoint}/deliveries/{delivery}/retry",
        post(retry),
    )
}

struct EndpointView {
    id: String,
    url: String,
    description: String,
    events: String,
    deliveries: Vec<DeliveryView>,
}

struct DeliveryView {
    id: i64,
    created: String,
    event_type: String,
    event_id: String,
    subject: String,
    state: String,
    attempts: i64,
    answer: String,
    /// When a waiting delivery is tried next.
    next_attempt: String,
    retryable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/webhooks.html")]
struct ListPage {
    layout: Layout,
    endpoints: Vec<EndpointView>,
}

async fn list(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
) -> Result<ListPage, AppError> {
    let mut endpoints = Vec::new();
    for endpoint in state.store.webhook_endpoints().await? {
        let deliveries = state
            .store
            .recent_deliveries(&endpoint.id, RECENT)
            .await?
            .into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                created: format_time(d.created_at),
                event_type: d.event_type,
                event_id: d.event_id,
                subject: d.subject,
                retryable: d.state != "delivered",
                next_attempt: if d.state == "pending" {
                    format_time(d.next_attempt_at)
                } else {
                    String::new()
                },
                state: d.state,
                attempts: d.attempts,
                answer: match (d.last_status, d.last_error) {
                    (_, Some(error)) => error,
                    (Some(status), None) => format!("answered {status}"),
                    (None, None) => String::new(),
                },
            })
            .collect();
        let events: Vec<&str> = endpoint.events.split_whitespace().collect();
        endpoints.push(EndpointView {
            id: endpoint.id,
            url: endpoint.url,
            description: endpoint.description.unwrap_or_default(),
            events: if events.is_empty() {
                "all".into()
            } else {
                events.join(", ")
            },
            deliveries,
        });
    }
    Ok(ListPage {
        layout: Layout::page(&session, Some(&admin)).await?,
        endpoints,
    })
}

async fn retry(
    action: AdminAction,
    Path((endpoint, delivery)): Path<(String, i64)>,
    CsrfForm(_): CsrfForm<crate::web::EmptyForm>,
) -> Result<Response, AppError> {
    let back = "/admin/webhooks";
    if let Some(page) = action.confirmed(back).await? {
        return Ok(page);
    }
    let state = &action.state;
    if !state
        .store
        .retry_delivery(&endpoint, delivery, state.clock.now())
        .await?
    {
        return Err(AppError::NotFound);
    }
    action
        .done(
            "admin.webhook_delivery_retried",
            None,
            Some(format!("webhook {endpoint}, delivery {delivery}")),
            Flash::success("The delivery is queued and goes out in a moment."),
            back,
        )
        .await
}
