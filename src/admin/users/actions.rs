//! What an admin can do to an account from its page: disable, enable, verify the address,
//! send a reset link, reset second factors, remove a passkey, grant and revoke roles, take back
//! consents, end sign-ins.

use super::*;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/users/{id}/{action}", post(act))
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    passkey_id: String,
}

/// Role names go into tokens as they are: short, no spaces or control characters.
fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 64
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

async fn act(
    action: AdminAction,
    Path((id, verb)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<Response, AppError> {
    let AdminAction { state, admin, .. } = &action;
    let user = find(state, &id).await?;
    let back = format!("/admin/users/{}", user.id);
    if let Some(page) = action.confirmed(&back).await? {
        return Ok(page);
    }
    let now = state.clock.now();
    let store = &state.store;
    let subject = Some(user.id.as_str());
    let (event, detail, message) = match verb.as_str() {
        "disable" => {
            if user.id == admin.id {
                return Err(AppError::BadRequest(
                    "You cannot disable your own account.".into(),
                ));
            }
            // Sessions and tokens check the flag and the epoch: both end everything at once.
            let event = state
                .events
                .about_user(crate::events::EventType::UserDisabled, &user);
            store.disable_user(&user.id, now, event).await?;
            (
                "admin.user_disabled",
                None,
                Flash::success(format!(
                    "{} is disabled: signed out everywhere, tokens inactive.",
                    user.email
                )),
            )
        }
        "enable" => {
            let event = state
                .events
                .about_user(crate::events::EventType::UserEnabled, &user);
            store.set_user_disabled(&user.id, false, now, event).await?;
            (
                "admin.user_enabled",
                None,
                Flash::success(format!("{} can sign in again.", user.email)),
            )
        }
        "verify-email" => {
            crate::verification::mark_verified(state, &user).await?;
            (
                "admin.email_verified",
                None,
                Flash::success(format!("{} is marked verified.", user.email)),
            )
        }
        "send-reset" => {
            crate::password_reset::send_reset_mail(state, &user).await?;
            let message = Flash::success(format!("A reset link is on its way to {}.", user.email));
            ("admin.password_reset_sent", None, message)
        }
        "reset-factors" => {
            let event = state.events.for_user(
                crate::events::EventType::SecondFactorRemoved,
                &user,
                serde_json::json!({ "method": "all" }),
            );
            store.remove_second_factors(&user.id, now, event).await?;
            (
                "admin.second_factors_reset",
                None,
                Flash::success(format!(
                    "{} signs in with the password alone until they set up a second factor again.",
                    user.email
                )),
            )
        }
        "roles-add" => {
            let role = form.role.trim().to_lowercase();
            if !valid_role(&role) {
                return Err(AppError::BadRequest(
                    "A role name is 1 to 64 letters, digits, '-', '_', '.' or ':'.".into(),
                ));
            }
            let event = state.events.for_user(
                crate::events::EventType::UserUpdated,
                &user,
                serde_json::json!({ "role_added": role }),
            );
            store.add_user_role(&user.id, &role, event).await?;
            (
                "admin.role_granted",
                Some(role.clone()),
                Flash::success(format!("{} has the role {role}.", user.email)),
            )
        }
        "roles-remove" => {
            let role = form.role.trim().to_string();
            if role == "admin" && user.id == admin.id {
                return Err(AppError::BadRequest(
                    "You cannot take the admin role from yourself.".into(),
                ));
            }
            let event = state.events.for_user(
                crate::events::EventType::UserUpdated,
                &user,
                serde_json::json!({ "role_removed": role }),
            );
            store.remove_user_role(&user.id, &role, event).await?;
            (
                "admin.role_revoked",
                Some(role.clone()),
                Flash::success(format!("{} no longer has the role {role}.", user.email)),
            )
        }
        "consents-revoke" => {
            let event = state.events.for_user(
                crate::events::EventType::ConsentRevoked,
                &user,
                serde_json::json!({ "client_id": form.client_id }),
            );
            store
                .revoke_consent(&user.id, &form.client_id, now, event)
                .await?;
            (
                "admin.consent_revoked",
                Some(form.client_id.clone()),
                Flash::success("The app's access was taken back."),
            )
        }
        "passkeys-remove" => {
            let removed = crate::passkeys::remove_passkey(state, &user, &form.passkey_id).await?;
            (
                "admin.passkey_removed",
                removed.clone(),
                match removed {
                    Some(name) => Flash::success(format!(
                        "The passkey “{name}” no longer signs {} in.",
                        user.email
                    )),
                    None => Flash::info("That passkey had already been removed."),
                },
            )
        }
        "sessions-revoke" => {
            let ended =
                crate::account::sessions::end_sign_in(state, &user.id, &form.session_id).await?;
            (
                "admin.session_revoked",
                None,
                if ended {
                    Flash::success("That session is signed out.")
                } else {
                    Flash::info("That session had already ended.")
                },
            )
        }
        _ => return Err(AppError::NotFound),
    };
    action.done(event, subject, detail, message, &back).await
}
