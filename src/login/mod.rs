//! `/login` and `/logout`.

pub mod second_factor;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::auth::throttle as password_throttle;
use crate::auth::{self as auth_service, PasswordCheck, Step, Subject};
use crate::input::NextUrl;
use crate::signup::{NextQuery, next_query};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout, MaybeUser, auth};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", post(logout))
        .merge(second_factor::router())
}

/// One message for an unknown email and a wrong password, so the form does not tell who has
/// an account.
pub const WRONG_CREDENTIALS: &str = "Wrong email or password.";
pub const ACCOUNT_DISABLED: &str =
    "This account is disabled. Contact the administrator if you think this is a mistake.";

#[derive(Template, WebTemplate)]
#[template(path = "login/login.html")]
struct LoginPage {
    layout: Layout,
    email: String,
    next: String,
    next_query: String,
    error: Option<String>,
    providers: Vec<crate::upstream::UpstreamButton>,
    /// Offer "Sign in with a passkey" (and passkeys in the email field's autofill).
    passkeys: bool,
}

impl LoginPage {
    async fn new(
        state: &AppState,
        session: &Session,
        email: String,
        next: &NextUrl,
        error: Option<String>,
    ) -> Result<Self, AppError> {
        Ok(Self {
            layout: Layout::new(session, None).await?,
            email,
            next_query: next_query(next),
            next: next.as_str().to_string(),
            error,
            providers: state.upstreams.buttons(),
            passkeys: state.passkeys.enabled(),
        })
    }
}

/// The sign-in page again, saying what went wrong (a passkey that did not work, say).
pub async fn page_with_error(
    state: &AppState,
    session: &Session,
    next: &NextUrl,
    status: StatusCode,
    message: &str,
) -> Result<Response, AppError> {
    let page = LoginPage::new(state, session, String::new(), next, Some(message.into())).await?;
    Ok((status, page).into_response())
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    MaybeUser(user): MaybeUser,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(query.next.as_deref());
    let fresh_sign_in = query.prompt.as_deref() == Some("login");
    if user.is_some() && !fresh_sign_in {
        return Ok(Redirect::to(next.as_str()).into_response());
    }
    // OIDC `login_hint`: fill in the email the app suggested.
    let hint: String = query
        .login_hint
        .unwrap_or_default()
        .trim()
        .chars()
        .take(254)
        .collect();
    Ok(LoginPage::new(&state, &session, hint, &next, None)
        .await?
        .into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn submit(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let next = NextUrl::parse_or_default(form.next.as_deref());
    let email = form.email.trim().to_string();
    if email.is_empty() || form.password.is_empty() {
        let page = LoginPage::new(
            &state,
            &session,
            email,
            &next,
            Some("Enter your email and password.".into()),
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let user =
        match auth_service::verify_password(&state, &meta, Subject::Email(&email), form.password)
            .await?
        {
            PasswordCheck::Right(user) => user,
            PasswordCheck::Paused(wait) => {
                let page = LoginPage::new(
                    &state,
                    &session,
                    email,
                    &next,
                    Some(password_throttle::wait_message(wait)),
                )
                .await?;
                let mut response = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
                if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return Ok(response);
            }
            PasswordCheck::Wrong => {
                let page = LoginPage::new(
                    &state,
                    &session,
                    email,
                    &next,
                    Some(WRONG_CREDENTIALS.into()),
                )
                .await?;
                return Ok((StatusCode::UNAUTHORIZED, page).into_response());
            }
        };
    let step = match after_first_factor(&state, &session, &user, email, &next).await? {
        Ok(step) => step,
        Err(refused) => return Ok(refused),
    };
    complete(&state, &meta, &session, &user, step, "pwd", &next).await
}

/// What follows a right first factor (a password, a passkey), as the sign-in service decides:
/// a disabled account or an address to confirm first is answered with the sign-in page saying
/// so (`email` filled in again), anything else is the step to go on with.
pub async fn after_first_factor(
    state: &AppState,
    session: &Session,
    user: &crate::store::User,
    email: String,
    next: &NextUrl,
) -> Result<Result<Step, Response>, AppError> {
    let message = match auth_service::after_first_factor(state, user).await? {
        Step::Disabled => ACCOUNT_DISABLED.to_string(),
        Step::MustVerifyEmail => {
            let sent = crate::verification::send_link_throttled(state, user).await?;
            format!(
                "Confirm your email address before you sign in. {}",
                sent.message
            )
        }
        step => return Ok(Ok(step)),
    };
    let page = LoginPage::new(state, session, email, next, Some(message)).await?;
    Ok(Err((StatusCode::FORBIDDEN, page).into_response()))
}

/// After the first step (`pwd`, or `upstream` for a provider like Google), as the sign-in
/// service decided (`step`, Disabled and MustVerifyEmail already answered by the caller): signs
/// the person in, or moves on to the second step.
pub async fn complete(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &crate::store::User,
    step: Step,
    first_method: &str,
    next: &NextUrl,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    match step {
        Step::SecondFactor => {
            auth::begin_second_factor(session, user, first_method, next.as_str(), now).await?;
            return second_factor::start(state, session, user).await;
        }
        Step::SignedIn => {}
        // Callers answer these with their own page first; never sign such a person in.
        Step::Disabled | Step::MustVerifyEmail => {
            return Err(AppError::Forbidden(
                "This account cannot sign in right now.",
            ));
        }
    }
    auth::sign_in(state, meta, session, user, &[first_method]).await?;
    state.store.record_login(&user.id, now).await?;
    tracing::info!(user_id = %user.id, method = first_method, "signed in");
    audit::record(
        state,
        meta,
        Event::own("sign_in", &user.id).detail(first_method.to_string()),
    )
    .await;
    Ok(Redirect::to(next.as_str()).into_response())
}

#[derive(Deserialize)]
pub struct LogoutForm {}

async fn logout(
    State(state): State<AppState>,
    session: Session,
    CsrfForm(_): CsrfForm<LogoutForm>,
) -> Result<Response, AppError> {
    auth::sign_out(&state, &session).await?;
    flash::set(&session, Flash::info("You have signed out.")).await?;
    Ok(Redirect::to("/").into_response())
}
