//! `/login/verify`: the second step of signing in, after the password. The person chooses among
//! their methods: a code from the authenticator app, a code by email, or a recovery code.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::auth::second_factor::{SecondFactorCheck, verify_second_factor};
use crate::input::{NextUrl, mask_email};
use crate::mfa::factors::{self, CodeCheck};
use crate::mfa::{CODE_MAILS, code_mails_key, code_mails_message, wrong_codes_message};
use crate::store::User;
use crate::throttle;
use crate::web::EmptyForm;
use crate::web::auth::{self, PendingSignIn};
use crate::web::flash::{self, Flash};
use crate::web::{AppError, CsrfForm, Layout};

/// The purpose of mailed sign-in codes (shared with the API's second step).
pub const LOGIN_CODE: &str = "login";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login/verify", get(show).post(submit))
        .route("/login/verify/email", post(send_email_code))
}

/// Right after the password: when email codes are the person's only method, the code is
/// mailed at once; otherwise the page opens on their passkey or authenticator app.
pub async fn start(state: &AppState, session: &Session, user: &User) -> Result<Response, AppError> {
    let passkey = user.has_passkey && state.passkeys.enabled();
    if user.email_otp_enabled && !passkey && !factors::totp_enabled(state, user).await? {
        let message = mail_login_code(state, user).await?;
        flash::set(session, message).await?;
        return Ok(Redirect::to("/login/verify?method=email").into_response());
    }
    Ok(Redirect::to("/login/verify").into_response())
}

fn code_sent(user: &User) -> Flash {
    Flash::success(format!(
        "We sent a 6-digit code to {}. It expires in 10 minutes.",
        mask_email(&user.email)
    ))
}

/// Mails a sign-in code unless too many went out lately; says what happened.
async fn mail_login_code(state: &AppState, user: &User) -> Result<Flash, AppError> {
    Ok(
        match throttle::take(state, &code_mails_key(&user.id), CODE_MAILS).await? {
            Some(wait) => Flash::error(code_mails_message(wait)),
            None => {
                factors::send_email_code(state, user, LOGIN_CODE, "to sign in").await?;
                code_sent(user)
            }
        },
    )
}

pub use crate::auth::second_factor::Method;

#[derive(Template, WebTemplate)]
#[template(path = "login/verify.html")]
pub(crate) struct VerifyPage {
    layout: Layout,
    method: &'static str,
    totp: bool,
    email: bool,
    /// The person has a passkey (and passkeys are on).
    passkey: bool,
    /// The ceremony for `navigator.credentials.get()`, when the page is on the passkey.
    passkey_options: Option<String>,
    masked_email: String,
    email_code_live: bool,
    error: Option<String>,
}

/// The waiting sign-in and its user, or where to send the browser instead.
pub(crate) async fn pending(
    state: &AppState,
    session: &Session,
) -> Result<Result<(PendingSignIn, User), Response>, AppError> {
    let restart = |message: &str| {
        let message = message.to_string();
        async move {
            flash::set(session, Flash::info(message)).await?;
            Ok::<_, AppError>(Redirect::to("/login").into_response())
        }
    };
    let Some(pending) = auth::pending_sign_in(session, state.clock.now()).await? else {
        auth::clear_pending_sign_in(session).await?;
        return Ok(Err(restart("Sign in with your email and password first. If you waited more than 15 minutes, start again.").await?));
    };
    match state.store.find_user_by_id(&pending.user_id).await? {
        Some(user) if !user.disabled && user.session_epoch == pending.epoch => {
            Ok(Ok((pending, user)))
        }
        _ => {
            auth::clear_pending_sign_in(session).await?;
            Ok(Err(restart("Sign in again.").await?))
        }
    }
}

/// The second-step page, on the method asked for (`totp`, `email`, `recovery`, `passkey`) when
/// the person has it, else on the first they have: a passkey, the app, email codes.
pub(crate) async fn page(
    state: &AppState,
    session: &Session,
    user: &User,
    requested: Option<&str>,
    error: Option<String>,
) -> Result<VerifyPage, AppError> {
    let totp = factors::totp_enabled(state, user).await?;
    let email = user.email_otp_enabled;
    let passkey = user.has_passkey && state.passkeys.enabled();
    let method = match requested {
        Some("passkey") if passkey => "passkey",
        Some(name) => match Method::parse(name) {
            Some(Method::Totp) if totp => "totp",
            Some(Method::Email) if email => "email",
            Some(Method::Recovery) => "recovery",
            _ => "",
        },
        None => "",
    };
    let method = match method {
        "" if passkey => "passkey",
        "" if totp => "totp",
        "" if email => "email",
        "" => "recovery",
        chosen => chosen,
    };
    let email_code_live = state
        .store
        .email_code(&user.id, LOGIN_CODE)
        .await?
        .is_some_and(|c| c.expires_at > state.clock.now());
    let passkey_options = if method == "passkey" {
        crate::passkeys::begin_for_user(state, user, crate::passkeys::Purpose::SecondFactor)
            .await?
            .map(|ceremony| ceremony.into_json())
    } else {
        None
    };
    Ok(VerifyPage {
        layout: Layout::new(session, None).await?,
        method,
        totp,
        email,
        passkey,
        passkey_options,
        masked_email: mask_email(&user.email),
        email_code_live,
        error,
    })
}

/// The name the page and its links use for a code method.
fn method_name(method: Method) -> &'static str {
    match method {
        Method::Totp => "totp",
        Method::Email => "email",
        Method::Recovery => "recovery",
    }
}

#[derive(Deserialize)]
struct MethodQuery {
    method: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<MethodQuery>,
) -> Result<Response, AppError> {
    let (_, user) = match pending(&state, &session).await? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    Ok(page(&state, &session, &user, query.method.as_deref(), None)
        .await?
        .into_response())
}

async fn send_email_code(
    State(state): State<AppState>,
    session: Session,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    let (_, user) = match pending(&state, &session).await? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    if !user.email_otp_enabled {
        return Ok(Redirect::to("/login/verify").into_response());
    }
    let message = match throttle::take(&state, &code_mails_key(&user.id), CODE_MAILS).await? {
        Some(wait) => Flash::error(code_mails_message(wait)),
        None => {
            factors::send_email_code(&state, &user, LOGIN_CODE, "to sign in").await?;
            code_sent(&user)
        }
    };
    flash::set(&session, message).await?;
    Ok(Redirect::to("/login/verify?method=email").into_response())
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    code: String,
}

async fn submit(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let (pending, user) = match pending(&state, &session).await? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    let Some(method) = Method::parse(&form.method) else {
        return Err(AppError::BadRequest(
            "Choose how to confirm it is you.".into(),
        ));
    };
    let check = match verify_second_factor(&state, &meta, &user, method, &form.code).await? {
        SecondFactorCheck::Paused(wait) => {
            let message = wrong_codes_message(wait);
            let page = page(
                &state,
                &session,
                &user,
                Some(method_name(method)),
                Some(message),
            )
            .await?;
            return Ok((StatusCode::TOO_MANY_REQUESTS, page).into_response());
        }
        SecondFactorCheck::Checked(check) => check,
    };
    if check != CodeCheck::Accepted {
        let page = page(
            &state,
            &session,
            &user,
            Some(method_name(method)),
            Some(check.message().into()),
        )
        .await?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }

    let methods = [pending.first_method.as_str(), method.record_name()];
    signed_in(&state, &meta, &session, &user, &methods).await?;
    tracing::info!(user_id = %user.id, method = method.record_name(), "signed in with a second factor");
    if method == Method::Recovery {
        let left = state.store.unused_recovery_codes(&user.id).await?;
        flash::set(
            &session,
            Flash::info(format!(
                "You used a recovery code; {left} left. Make new ones on your security page if you are running low."
            )),
        )
        .await?;
    }
    let next = NextUrl::parse_or_default(Some(&pending.next));
    Ok(Redirect::to(next.as_str()).into_response())
}

/// The second step passed (with a code here, or a passkey): the person is signed in with both
/// methods, and it is recorded.
pub(crate) async fn signed_in(
    state: &AppState,
    meta: &crate::audit::RequestMeta,
    session: &Session,
    user: &User,
    methods: &[&str],
) -> Result<(), AppError> {
    auth::sign_in(state, meta, session, user, methods).await?;
    state
        .store
        .record_login(&user.id, state.clock.now())
        .await?;
    crate::audit::record(
        state,
        meta,
        crate::audit::Event::own("sign_in", &user.id).detail(methods.join(" ")),
    )
    .await;
    Ok(())
}
