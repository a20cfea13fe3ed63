//! `/admin`: the installation at a glance. Charts drawn as SVG on the server (no JavaScript),
//! each with the same numbers as a table for screen readers, built from the database (the
//! `activity` counts and a few totals), so every node of a cluster shows the same.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use tower_sessions::Session;

use super::Admin;
use super::users::EventRow;
use crate::app::AppState;
use crate::store::{ActivityCount, Totals};
use crate::web::{AppError, Layout};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

#[derive(Template, WebTemplate)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    layout: Layout,
    totals: Totals,
    /// Per hour over a day, per day over 30 days.
    charts: Vec<Chart>,
    /// Second steps by method, tokens by grant, refusals by limit.
    breakdowns: Vec<Breakdown>,
    events: Vec<EventRow>,
    /// Mail the workers could not send: still retried, or given up.
    unsent_mail: Vec<UnsentMailRow>,
}

struct UnsentMailRow {
    queued: String,
    recipient: String,
    subject: String,
    state: &'static str,
    attempts: i64,
    error: String,
}

impl From<crate::store::UnsentMail> for UnsentMailRow {
    fn from(mail: crate::store::UnsentMail) -> Self {
        Self {
            queued: crate::account::format_time(mail.created_at),
            recipient: mail.recipient,
            subject: mail.subject,
            state: if mail.state == "failed" {
                "given up"
            } else {
                "retrying"
            },
            attempts: mail.attempts,
            error: mail.last_error.unwrap_or_default(),
        }
    }
}

/// Bars over time: sign-ins beside failed sign-ins, one pair a slot.
struct Chart {
    title: &'static str,
    slots: Vec<Slot>,
    /// The tallest bar's value (the top of the scale).
    max: i64,
    total_ok: i64,
    total_failed: i64,
    bar_width: i64,
}

struct Slot {
    /// Axis text, shown for every few slots.
    label: String,
    show_label: bool,
    ok: i64,
    failed: i64,
    /// Drawing, in the SVG's units: the two bars' left edges and tops, and their heights.
    ok_x: i64,
    failed_x: i64,
    label_x: i64,
    ok_y: i64,
    failed_y: i64,
    ok_height: i64,
    failed_height: i64,
}

/// Totals by label, for one kind of count, as horizontal bars.
struct Breakdown {
    title: &'static str,
    empty: &'static str,
    rows: Vec<BreakdownRow>,
}

struct BreakdownRow {
    label: String,
    count: i64,
    /// Bar length out of 100.
    width: i64,
}

/// Chart geometry (SVG user units): the plot starts at `PLOT_LEFT`, is 600 wide and 160 high,
/// with room above for the scale and below for the axis labels.
const PLOT_LEFT: i64 = 40;
const PLOT_TOP: i64 = 10;
const PLOT_WIDTH: i64 = 600;
const PLOT_HEIGHT: i64 = 160;

fn chart(title: &'static str, slots: Vec<(String, i64, i64)>, label_every: usize) -> Chart {
    let max = slots
        .iter()
        .map(|(_, ok, failed)| (*ok).max(*failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let width = PLOT_WIDTH / slots.len().max(1) as i64;
    let bar_width = ((width - 4) / 2).max(1);
    let scale = |v: i64| (v * PLOT_HEIGHT + max - 1) / max;
    let count = slots.len();
    Chart {
        title,
        max,
        bar_width,
        total_ok: slots.iter().map(|s| s.1).sum(),
        total_failed: slots.iter().map(|s| s.2).sum(),
        slots: slots
            .into_iter()
            .enumerate()
            .map(|(i, (label, ok, failed))| {
                let x = PLOT_LEFT + i as i64 * width + 1;
                Slot {
                    show_label: i % label_every == 0 || i + 1 == count,
                    label,
                    ok,
                    failed,
                    ok_x: x,
                    failed_x: x + bar_width + 1,
                    label_x: x + bar_width,
                    ok_y: PLOT_TOP + PLOT_HEIGHT - scale(ok),
                    failed_y: PLOT_TOP + PLOT_HEIGHT - scale(failed),
                    ok_height: scale(ok),
                    failed_height: scale(failed),
                }
            })
            .collect(),
    }
}

/// Sign-ins and failed sign-ins in `slots` slots of `length` seconds ending with the current
/// one.
fn over_time(
    counts: &[ActivityCount],
    now: i64,
    length: i64,
    slots: i64,
    label: impl Fn(i64) -> String,
) -> Vec<(String, i64, i64)> {
    let current = now - now.rem_euclid(length);
    let first = current - (slots - 1) * length;
    let mut ok = vec![0; slots as usize];
    let mut failed = vec![0; slots as usize];
    for c in counts
        .iter()
        .filter(|c| c.kind == "event" && c.hour >= first)
    {
        let slot = ((c.hour - first) / length) as usize;
        match c.label.as_str() {
            "sign_in" => ok[slot] += c.count,
            "sign_in_failed" => failed[slot] += c.count,
            _ => {}
        }
    }
    (0..slots)
        .map(|i| {
            let start = first + i * length;
            (label(start), ok[i as usize], failed[i as usize])
        })
        .collect()
}

fn breakdown(
    counts: &[ActivityCount],
    kind: &str,
    title: &'static str,
    empty: &'static str,
    name: impl Fn(&str) -> String,
) -> Breakdown {
    let mut totals: HashMap<&str, i64> = HashMap::new();
    for c in counts.iter().filter(|c| c.kind == kind) {
        *totals.entry(c.label.as_str()).or_default() += c.count;
    }
    let mut rows: Vec<(&str, i64)> = totals.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let max = rows.first().map_or(1, |r| r.1.max(1));
    Breakdown {
        title,
        empty,
        rows: rows
            .into_iter()
            .map(|(label, count)| BreakdownRow {
                label: name(label),
                count,
                width: (count * 100 + max - 1) / max,
            })
            .collect(),
    }
}

fn second_factor_name(method: &str) -> String {
    match method {
        "totp" => "Authenticator app".into(),
        "email_otp" => "Code by email".into(),
        "recovery_code" => "Recovery code".into(),
        other => other.into(),
    }
}

fn hour_label(start: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(start)
        .map(|t| format!("{:02}:00", t.hour()))
        .unwrap_or_default()
}

fn day_label(start: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(start)
        .map(|t| format!("{} {}", t.day(), &t.month().to_string()[..3]))
        .unwrap_or_default()
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/admin", axum::routing::get(show))
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Admin(admin): Admin,
) -> Result<OverviewPage, AppError> {
    // This node's latest counts first, so the page includes what just happened here.
    if let Err(e) = state.metrics.activity().flush(&state.store).await {
        tracing::warn!(error = %e, "could not add this node's activity counts");
    }
    let now = state.clock.now();
    let today = now - now.rem_euclid(DAY);
    let counts = state.store.activity_since(today - 29 * DAY).await?;
    let active_since = now - state.config.session_idle_timeout.as_secs() as i64;
    let totals = state.store.totals(active_since).await?;
    let events = state.store.latest_audit_events(10).await?;
    let unsent_mail = state.store.unsent_mail(20).await?;
    let last_day: Vec<ActivityCount> = counts
        .iter()
        .filter(|c| c.hour > now - DAY)
        .cloned()
        .collect();
    Ok(OverviewPage {
        layout: Layout::new(&session, Some(&admin)).await?,
        totals,
        charts: vec![
            chart(
                "Sign-ins per hour, last 24 hours (UTC)",
                over_time(&counts, now, HOUR, 24, hour_label),
                3,
            ),
            chart(
                "Sign-ins per day, last 30 days (UTC)",
                over_time(&counts, now, DAY, 30, day_label),
                5,
            ),
        ],
        breakdowns: vec![
            breakdown(
                &counts,
                "second_factor",
                "Second steps by method, last 30 days",
                "No second steps yet.",
                second_factor_name,
            ),
            breakdown(
                &counts,
                "token",
                "Tokens issued by grant, last 30 days",
                "No tokens issued yet.",
                str::to_string,
            ),
            breakdown(
                &last_day,
                "throttled",
                "Attempts refused by a limit, last 24 hours",
                "No attempts were refused.",
                str::to_string,
            ),
        ],
        events: events.into_iter().map(EventRow::from).collect(),
        unsent_mail: unsent_mail.into_iter().map(UnsentMailRow::from).collect(),
    })
}
