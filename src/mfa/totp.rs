//! The authenticator app (TOTP, RFC 6238): set up with a QR code, confirmed with a code, removed.

use super::*;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/security/totp", get(show_totp_setup))
        .route("/account/security/totp/setup", post(start_totp))
        .route("/account/security/totp/confirm", post(confirm_totp))
        .route("/account/security/totp/disable", post(disable_totp))
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa/totp_setup.html")]
struct TotpSetupPage {
    layout: Layout,
    qr_svg: String,
    secret: String,
    issuer: String,
    error: Option<String>,
}

async fn start_totp(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    if factors::totp_enabled(&state, &user).await? {
        return back_to_security(
            &session,
            Flash::info(
                "Your authenticator app is already set up. Remove it first to set up another.",
            ),
        )
        .await;
    }
    // A new factor could lock the owner out: it needs the person, not only the session.
    if let Some(page) = step_up_page(&state, &session, &user, "/account/security").await? {
        return Ok(page);
    }
    factors::start_totp(&state, &user).await?;
    Ok(Redirect::to("/account/security/totp").into_response())
}

async fn totp_setup_page(
    state: &AppState,
    session: &Session,
    user: &User,
    error: Option<String>,
) -> Result<Option<TotpSetupPage>, AppError> {
    let Some(factor) = state.store.totp_factor(&user.id).await? else {
        return Ok(None);
    };
    if factor.confirmed_at.is_some() {
        return Ok(None);
    }
    let secret = factors::decrypt_secret(state, &user.id, &factor.secret_enc)?;
    let totp = factors::totp(state, secret, &user.email)?;
    Ok(Some(TotpSetupPage {
        layout: Layout::new(session, Some(user)).await?,
        qr_svg: factors::qr_svg(&totp.get_url())?,
        secret: factors::grouped_secret(&totp),
        issuer: state.config.totp_issuer.clone(),
        error,
    }))
}

async fn show_totp_setup(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Response, AppError> {
    match totp_setup_page(&state, &session, &user, None).await? {
        Some(page) => Ok(page.into_response()),
        None => Ok(Redirect::to("/account/security").into_response()),
    }
}

async fn confirm_totp(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let had_factor = factors::has_second_factor(&state, &user).await?;
    let check = match verify_setup_code(&state, &user, &form.code).await? {
        SecondFactorCheck::Paused(wait) => {
            Err((StatusCode::TOO_MANY_REQUESTS, wrong_codes_message(wait)))
        }
        SecondFactorCheck::Checked(CodeCheck::Accepted) => Ok(()),
        SecondFactorCheck::Checked(other) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            other.message().to_string(),
        )),
    };
    if let Err((status, message)) = check {
        return match totp_setup_page(&state, &session, &user, Some(message)).await? {
            Some(page) => Ok((status, page).into_response()),
            None => Ok(Redirect::to("/account/security").into_response()),
        };
    }
    state
        .store
        .confirm_totp(
            &user.id,
            state.clock.now(),
            state.events.for_user(
                crate::events::EventType::SecondFactorAdded,
                &user,
                serde_json::json!({ "method": "totp" }),
            ),
        )
        .await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("totp_enabled", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "authenticator app enabled");
    finish_enrolment(
        &state,
        &session,
        &user,
        had_factor,
        "Your authenticator app is set up.",
    )
    .await
}

async fn disable_totp(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmIdentityForm>,
) -> Result<Response, AppError> {
    if let Some(message) = confirm_identity(&state, &meta, &user, &form, true).await? {
        return back_to_security(&session, Flash::error(message)).await;
    }
    let event = state.events.for_user(
        crate::events::EventType::SecondFactorRemoved,
        &user,
        serde_json::json!({ "method": "totp" }),
    );
    state.store.delete_totp(&user.id, event).await?;
    factors::forget_recovery_codes_if_unprotected(&state, &user.id).await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("totp_removed", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "authenticator app removed");
    back_to_security(
        &session,
        Flash::success("Your authenticator app was removed."),
    )
    .await
}
