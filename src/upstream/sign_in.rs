//! What a verified upstream identity leads to: a link to the signed-in account, a sign-in to
//! the account it was linked to, a new account, or the password step that links an existing one.

use super::*;

/// A signed-in person linking a provider from `/account`.
pub(super) async fn link_to_signed_in_user(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    current: Option<User>,
    user_id: &str,
    name: &str,
    person: VerifiedPerson,
) -> Result<Response, AppError> {
    let label = state.upstreams.display_name(name);
    let Some(user) = current.filter(|u| u.id == user_id) else {
        return Err(AppError::Forbidden(
            "Sign in again to link another way of signing in.",
        ));
    };
    let message = match state.store.find_identity(name, &person.subject).await? {
        Some(identity) if identity.user_id == user.id => {
            Flash::info(format!("This {label} account is already linked."))
        }
        Some(_) => Flash::error(format!(
            "This {label} account is linked to another account here. Unlink it there first."
        )),
        None if crate::auth::linking(&user, person.email.as_deref(), person.email_verified)
            == Linking::Refused =>
        {
            Flash::error(format!(
                "Confirm your email address first (send a new link from this page), then link {label}."
            ))
        }
        None => {
            let now = state.clock.now();
            if !user.email_verified {
                // The provider confirmed this very address (`auth::linking`).
                crate::verification::mark_verified(state, &user).await?;
            }
            state
                .store
                .link_identity(
                    &user.id,
                    name,
                    &person.subject,
                    person.email.as_deref(),
                    now,
                    state.events.for_user(
                        crate::events::EventType::ProviderLinked,
                        &user,
                        serde_json::json!({ "provider": name }),
                    ),
                )
                .await?;
            tracing::info!(user_id = %user.id, provider = name, "linked an upstream account");
            audit::record(
                state,
                meta,
                Event::own("upstream_linked", &user.id).detail(name.to_string()),
            )
            .await;
            Flash::success(format!("You can now sign in with {label}."))
        }
    };
    flash::set(session, message).await?;
    Ok(Redirect::to("/account").into_response())
}

/// Finds the person by their link, asks for the password of an existing account with the same
/// email, or creates an account.
pub(super) async fn sign_in_with(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    name: &str,
    person: VerifiedPerson,
    next: &NextUrl,
) -> Result<Response, AppError> {
    let label = state.upstreams.display_name(name);
    let now = state.clock.now();
    if let Some(identity) = state.store.find_identity(name, &person.subject).await? {
        let user = state.store.find_user_by_id(&identity.user_id).await?;
        let Some(user) = user else {
            return Err(AppError::NotFound);
        };
        state
            .store
            .touch_identity(name, &person.subject, person.email.as_deref(), now)
            .await?;
        return finish_sign_in(state, meta, session, &user, next).await;
    }
    let Some(email) = person.email.clone() else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "We need your email address",
            format!(
                "{label} did not share an email address, and an account here needs one. Allow it at {label}, or sign up with a password."
            ),
        ));
    };
    if let Some(existing) = state.store.find_user_by_email(&email).await? {
        // No silent takeover: the person proves they own the local account first.
        return link::ask_for_password(state, session, name, &person, &existing, next).await;
    }
    // An address the provider has not confirmed could belong to someone else, who would later
    // reset the password of this account and share it with the provider's account: no new
    // account from it.
    if !person.email_verified {
        return Ok(page(
            StatusCode::FORBIDDEN,
            "Your email address is not confirmed",
            format!(
                "{label} has not confirmed {email}, so we cannot make an account with it. Confirm it at {label} first, or sign up with a password."
            ),
        ));
    }
    let new_user = NewUser {
        email: email.clone(),
        display_name: person
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(100).collect()),
        password_hash: None,
        roles: Vec::new(),
        email_verified: true,
        identity: Some(NewIdentity {
            provider: name.to_string(),
            subject: person.subject.clone(),
            email: Some(email),
        }),
        now,
    };
    let user = match state
        .store
        .create_user(new_user, |user| state.events.user_created(user, "upstream"))
        .await
    {
        Ok(user) => user,
        Err(e) if e.is_unique_violation() => {
            return Ok(page(
                StatusCode::CONFLICT,
                "That sign-in could not be finished",
                "The account was created by another request at the same moment. Start again.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user_id = %user.id, provider = name, "signed up through an upstream provider");
    audit::record(
        state,
        meta,
        Event::own("sign_up", &user.id).detail(name.to_string()),
    )
    .await;
    finish_sign_in(state, meta, session, &user, next).await
}

/// After the provider vouched for the person: the sign-in service decides what follows, as
/// for a password.
pub(super) async fn finish_sign_in(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &User,
    next: &NextUrl,
) -> Result<Response, AppError> {
    state.metrics.sign_in("upstream", "success");
    finish_sign_in_after(state, meta, session, user, METHOD, next).await
}

/// The same after `first_method` (`upstream`, or `pwd` when linking asked for the password).
pub(crate) async fn finish_sign_in_after(
    state: &AppState,
    meta: &RequestMeta,
    session: &Session,
    user: &User,
    first_method: &str,
    next: &NextUrl,
) -> Result<Response, AppError> {
    match crate::auth::after_first_factor(state, user).await? {
        Step::Disabled => Ok(disabled_page()),
        Step::MustVerifyEmail => {
            let sent = crate::verification::send_link_throttled(state, user).await?;
            Ok(page(
                StatusCode::FORBIDDEN,
                "Confirm your email address",
                format!(
                    "Confirm your email address before you sign in. {}",
                    sent.message
                ),
            ))
        }
        step => crate::login::complete(state, meta, session, user, step, first_method, next).await,
    }
}
