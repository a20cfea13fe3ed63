//! Recovery codes: shown once, regenerated, downloaded as a text file.

use super::*;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/account/security/recovery-codes",
            post(regenerate_recovery_codes),
        )
        .route(
            "/account/security/recovery-codes.txt",
            post(download_recovery_codes),
        )
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa/recovery_codes.html")]
pub(super) struct RecoveryCodesPage {
    layout: Layout,
    codes: Vec<String>,
}

pub(super) async fn show_recovery_codes(
    state: &AppState,
    session: &Session,
    user: &User,
    message: &str,
) -> Result<Response, AppError> {
    // The codes exist in this one response only (hashed in the database, nowhere else): the
    // download button posts them back from the page.
    let codes = factors::issue_recovery_codes(state, user).await?;
    flash::set(session, Flash::success(message)).await?;
    Ok(RecoveryCodesPage {
        layout: Layout::new(session, Some(user)).await?,
        codes,
    }
    .into_response())
}

async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    meta: crate::audit::RequestMeta,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ConfirmIdentityForm>,
) -> Result<Response, AppError> {
    if !factors::has_second_factor(&state, &user).await? {
        return back_to_security(&session, Flash::info("Set up a second factor first.")).await;
    }
    if let Some(message) = confirm_identity(&state, &meta, &user, &form, true).await? {
        return back_to_security(&session, Flash::error(message)).await;
    }
    crate::audit::record(
        &state,
        &meta,
        crate::audit::Event::own("recovery_codes_regenerated", &user.id),
    )
    .await;
    show_recovery_codes(
        &state,
        &session,
        &user,
        "Here are your new recovery codes. The old ones no longer work.",
    )
    .await
}

#[derive(Deserialize)]
struct DownloadForm {
    #[serde(default)]
    codes: String,
}

/// The codes the page showed, posted back by its download button, as a text file. The server
/// keeps no copy: it only echoes codes in the shape it makes (`xxxxx-xxxxx`, ten at most).
async fn download_recovery_codes(
    CurrentUser(_): CurrentUser,
    CsrfForm(form): CsrfForm<DownloadForm>,
) -> Result<Response, AppError> {
    let codes: Vec<&str> = form.codes.split_whitespace().collect();
    let shaped = |code: &&str| {
        code.len() == 11
            && code.char_indices().all(|(i, c)| {
                if i == 5 {
                    c == '-'
                } else {
                    c.is_ascii_alphanumeric()
                }
            })
    };
    if codes.is_empty() || codes.len() > 10 || !codes.iter().all(shaped) {
        return Err(AppError::BadRequest(
            "These are not recovery codes. Make new ones on your security page.".into(),
        ));
    }
    let body = format!(
        "Portcullis recovery codes\n\nEach code works once, when you cannot use your other sign-in methods.\nKeep them somewhere safe.\n\n{}\n",
        codes.join("\n")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"portcullis-recovery-codes.txt\"",
            ),
        ],
        body,
    )
        .into_response())
}
