//! One-time codes by email as a second factor: turned on with a mailed code, turned off.

use super::*;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/security/email-otp", get(show_email_setup))
        .route("/account/security/email-otp/setup", post(start_email_codes))
        .route(
            "/account/security/email-otp/confirm",
            post(confirm_email_codes),
        )
        .route(
            "/account/security/email-otp/disable",
            post(disable_email_codes),
        )
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa/email_setup.html")]
struct EmailSetupPage {
    layout: Layout,
    masked_email: String,
    error: Option<String>,
}

async fn start_email_codes(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    if user.email_otp_enabled {
        return back_to_security(&session, Flash::info("Email codes are already on.")).await;
    }
    if let Some(page) = step_up_page(&state, &session, &user, "/account/security").await? {
        return Ok(page);
    }
    if let Some(wait) = throttle::take(&state, &code_mails_key(&user.id), CODE_MAILS).await? {
        return back_to_security(&session, Flash::error(code_mails_message(wait))).await;
    }
    factors::send_email_code(
        &state,
        &user,
        ENABLE_EMAIL_CODES,
        "to turn on sign-in codes by email",
    )
    .await?;
    Ok(Redirect::to("/account/security/email-otp").into_response())
}

async fn show_email_setup(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Response, AppError> {
    if user.email_otp_enabled
        || state
            .store
            .email_code(&user.id, ENABLE_EMAIL_CODES)
            .await?
            .is_none()
    {
        return Ok(Redirect::to("/account/security").into_response());
    }
    Ok(EmailSetupPage {
        layout: Layout::new(&session, Some(&user)).await?,
        masked_email: mask_email(&user.email),
        error: None,
    }
    .into_response())
}

async fn confirm_email_codes(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let had_factor = factors::has_second_factor(&state, &user).await?;
    let check = factors::check_email_code(&state, &user, ENABLE_EMAIL_CODES, &form.code).await?;
    if check != CodeCheck::Accepted {
        let page = EmailSetupPage {
            layout: Layout::new(&session, Some(&user)).await?,
            masked_email: mask_email(&user.email),
            error: Some(check.message().into()),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    state
        .store
        .set_email_otp_enabled(
            &user.id,
            true,
            state.clock.now(),
            state.events.for_user(
                crate::events::EventType::SecondFactorAdded,
                &user,
                serde_json::json!({ "method": "email" }),
            ),
        )
        .await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("email_codes_enabled", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "email codes enabled");
    finish_enrolment(
        &state,
        &session,
        &user,
        had_factor,
        "Sign-in codes by email are on.",
    )
    .await
}

async fn disable_email_codes(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmIdentityForm>,
) -> Result<Response, AppError> {
    if let Some(message) = confirm_identity(&state, &meta, &user, &form, true).await? {
        return back_to_security(&session, Flash::error(message)).await;
    }
    state
        .store
        .set_email_otp_enabled(
            &user.id,
            false,
            state.clock.now(),
            state.events.for_user(
                crate::events::EventType::SecondFactorRemoved,
                &user,
                serde_json::json!({ "method": "email" }),
            ),
        )
        .await?;
    factors::forget_recovery_codes_if_unprotected(&state, &user.id).await?;
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("email_codes_disabled", &user.id),
    )
    .await;
    tracing::info!(user_id = %user.id, "email codes disabled");
    back_to_security(&session, Flash::success("Sign-in codes by email are off.")).await
}
