//! The sign-in service: every rule of proving who someone is, in one place and without HTTP.
//!
//! The hosted pages, the JSON API, upstream sign-in, account linking, admin confirmation and
//! the account's sensitive changes all call it, and only map its answers to their own wire
//! formats: a password is checked here and nowhere else (under the throttle, with the length
//! limit and a dummy hash for unknown addresses), and what follows a first factor is decided
//! here once.

pub mod second_factor;
pub mod throttle;

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::store::User;
use crate::web::AppError;

/// Whose password is being checked.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    /// A sign-in: the address as typed. An unknown one costs the same hash as a known one.
    Email(&'a str),
    /// A known account: linking, confirming a change, an admin's confirmation.
    User(&'a User),
}

/// The outcome of a password check.
pub enum PasswordCheck {
    Right(User),
    /// Unknown email or wrong password (one answer for both).
    Wrong,
    /// Too many failures lately for this account or address: seconds to wait.
    Paused(i64),
}

/// Checks a password under the per-account and per-address throttle. The attempt is counted
/// before the hash; a right password gives it back and clears the account's failures. A
/// failed sign-in by address is recorded in the audit log (callers with a known account record
/// their own event, which names what was being confirmed). Sign-ins by address are counted in
/// the metrics by result.
pub async fn verify_password(
    state: &AppState,
    meta: &RequestMeta,
    subject: Subject<'_>,
    attempt: String,
) -> Result<PasswordCheck, AppError> {
    let check = check_password(state, meta, subject, attempt).await?;
    if let Subject::Email(_) = subject {
        let result = match check {
            PasswordCheck::Right(_) => "success",
            PasswordCheck::Wrong => "failure",
            PasswordCheck::Paused(_) => "throttled",
        };
        state.metrics.sign_in("password", result);
        sign_in_event(state, subject, &check).await;
    }
    Ok(check)
}

/// `sign_in.succeeded` / `sign_in.failed` when the operator asked for them
/// (`PORTCULLIS_SIGN_IN_EVENTS`). There is no change to write them with: they go alone, and a
/// failure to write them is logged, not the person's problem.
async fn sign_in_event(state: &AppState, subject: Subject<'_>, check: &PasswordCheck) {
    use crate::events::EventType;
    let event = match (subject, check) {
        (_, PasswordCheck::Right(user)) => state.events.for_user(
            EventType::SignInSucceeded,
            user,
            serde_json::json!({ "method": "password" }),
        ),
        (Subject::Email(typed), _) => state.events.event(
            EventType::SignInFailed,
            &crate::store::users_email_key(typed),
            serde_json::json!({
                "email": typed,
                "method": "password",
                "reason": if matches!(check, PasswordCheck::Paused(_)) { "throttled" } else { "wrong_password_or_unknown_address" },
            }),
        ),
        (Subject::User(_), _) => None,
    };
    if let Some(event) = event
        && let Err(e) = state.store.write_events(&[event]).await
    {
        tracing::warn!(error = %e, "could not write a sign-in event");
    }
}

async fn check_password(
    state: &AppState,
    meta: &RequestMeta,
    subject: Subject<'_>,
    attempt: String,
) -> Result<PasswordCheck, AppError> {
    let email = match subject {
        Subject::Email(email) => email,
        Subject::User(user) => user.email.as_str(),
    };
    // Refused before anything is counted or written when the hashing workers are booked up.
    if state.hasher.is_booked_up() {
        state.metrics.throttled("password_queue");
        return Err(AppError::Busy);
    }
    let account_key = throttle::account_key(email);
    let ip_key = throttle::ip_key(meta.ip.as_deref());
    let counted = match throttle::begin(state, &account_key, &ip_key).await? {
        Ok(counted) => counted,
        Err(wait) => {
            tracing::warn!(ip = ?meta.ip, "password checks paused by throttling");
            return Ok(PasswordCheck::Paused(wait));
        }
    };
    if attempt.chars().count() > crate::password::MAX_LENGTH {
        return Ok(PasswordCheck::Wrong);
    }
    let user = match subject {
        Subject::Email(email) => state.store.find_user_by_email(email).await?,
        Subject::User(user) => Some(user.clone()),
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let right = match state.hasher.verify(attempt, hash).await {
        Ok(right) => right,
        Err(e) => {
            counted.not_checked(state).await?;
            return Err(e.into());
        }
    };
    match user {
        Some(user) if right => {
            counted.succeeded(state).await?;
            Ok(PasswordCheck::Right(user))
        }
        user => {
            if let Subject::Email(email) = subject {
                let failed = Event {
                    name: "sign_in_failed",
                    actor: None,
                    subject: user.as_ref().map(|u| u.id.as_str()),
                    detail: Some(email.chars().take(254).collect()),
                };
                audit::record(state, meta, failed).await;
            }
            Ok(PasswordCheck::Wrong)
        }
    }
}

/// What follows a right first factor (a password, or a provider like Google).
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The account is disabled: no sign-in.
    Disabled,
    /// `PORTCULLIS_REQUIRE_VERIFIED_EMAIL` is on and the address is not confirmed yet.
    MustVerifyEmail,
    /// The account has a second factor: ask for it.
    SecondFactor,
    /// Nothing more to ask: sign the person in.
    SignedIn,
}

/// The one decision of what follows a first factor, for pages, API and upstream alike.
pub async fn after_first_factor(state: &AppState, user: &User) -> Result<Step, AppError> {
    if user.disabled {
        return Ok(Step::Disabled);
    }
    if state.config.require_verified_email && !user.email_verified {
        return Ok(Step::MustVerifyEmail);
    }
    if crate::mfa::factors::has_second_factor(state, user).await? {
        return Ok(Step::SecondFactor);
    }
    Ok(Step::SignedIn)
}

/// Whether a provider's account may be linked to an account here.
#[derive(Debug, PartialEq, Eq)]
pub enum Linking {
    Allowed,
    /// The account's address is unconfirmed, and the provider confirmed this very address: the
    /// link may be made, and it confirms the address too.
    AllowedConfirmingEmail,
    /// The account's address is unconfirmed: whoever made the account may not own the address,
    /// and a link made now would outlast the owner's password reset ("account pre-hijacking",
    /// Sudhodanan & Paverd, USENIX Security 2022).
    Refused,
}

/// The one rule for linking a provider (from `/account`, or with the account's password).
pub fn linking(user: &User, provider_email: Option<&str>, provider_verified: bool) -> Linking {
    if user.email_verified {
        return Linking::Allowed;
    }
    let same_address = provider_email.is_some_and(|email| {
        crate::store::users_email_key(email) == crate::store::users_email_key(&user.email)
    });
    if provider_verified && same_address {
        Linking::AllowedConfirmingEmail
    } else {
        Linking::Refused
    }
}

/// What a person offers to confirm it is them before a sensitive change (step-up).
pub enum Proof {
    Password(String),
    /// A current code from a *confirmed* authenticator app.
    AuthenticatorCode(String),
}

/// The outcome of a step-up.
pub enum Confirmation {
    Confirmed,
    Wrong,
    /// Too many wrong attempts lately: seconds to wait.
    Paused(i64),
}

/// Confirms it is the account's owner: the password under the password throttle, or a code of
/// the confirmed authenticator under the second-step code limit (an authenticator whose set-up
/// was never finished proves nothing).
pub async fn confirm_identity(
    state: &AppState,
    meta: &RequestMeta,
    user: &User,
    proof: Proof,
) -> Result<Confirmation, AppError> {
    match proof {
        Proof::Password(password) => Ok(
            match verify_password(state, meta, Subject::User(user), password).await? {
                PasswordCheck::Right(_) => Confirmation::Confirmed,
                PasswordCheck::Wrong => Confirmation::Wrong,
                PasswordCheck::Paused(wait) => Confirmation::Paused(wait),
            },
        ),
        Proof::AuthenticatorCode(code) => {
            use crate::mfa::factors::{self, CodeCheck};
            let key = crate::mfa::wrong_codes_key(&user.id);
            if let Some(wait) = crate::throttle::take(state, &key, crate::mfa::WRONG_CODES).await? {
                return Ok(Confirmation::Paused(wait));
            }
            let check = factors::check_totp(state, user, &code).await?;
            if check != CodeCheck::Wrong {
                crate::throttle::release(state, &key).await?;
            }
            Ok(if check == CodeCheck::Accepted {
                Confirmation::Confirmed
            } else {
                Confirmation::Wrong
            })
        }
    }
}

/// What `address_proven` took away because it was attached while the address was unproven.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stripped {
    pub provider_links: u64,
    pub second_factors: bool,
    pub app_grants: usize,
}

impl Stripped {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The owner proved control of the account's address (a reset or confirmation link opened).
/// If it was unconfirmed until now, whoever made the account may have been someone else, who
/// attached a way back in for after the owner takes the account over ("account pre-hijacking",
/// Sudhodanan & Paverd, USENIX Security 2022): every provider link, second factor and app grant
/// is removed, and the address is marked confirmed.
pub async fn address_proven(
    state: &AppState,
    meta: &RequestMeta,
    user: &User,
) -> Result<Stripped, AppError> {
    if user.email_verified {
        return Ok(Stripped::default());
    }
    let now = state.clock.now();
    let store = &state.store;
    let mut stripped = Stripped {
        provider_links: store
            .unlink_all_identities(
                &user.id,
                state.events.for_user(
                    crate::events::EventType::ProviderUnlinked,
                    user,
                    serde_json::json!({ "provider": "all" }),
                ),
            )
            .await?,
        ..Default::default()
    };
    if crate::mfa::factors::has_second_factor(state, user).await? {
        stripped.second_factors = true;
    }
    let event = stripped.second_factors.then(|| {
        state.events.for_user(
            crate::events::EventType::SecondFactorRemoved,
            user,
            serde_json::json!({ "method": "all" }),
        )
    });
    store
        .remove_second_factors(&user.id, now, event.flatten())
        .await?;
    for (client_id, _, _, _) in store.consents_of(&user.id).await? {
        let event = state.events.for_user(
            crate::events::EventType::ConsentRevoked,
            user,
            serde_json::json!({ "client_id": client_id }),
        );
        store
            .revoke_consent(&user.id, &client_id, now, event)
            .await?;
        stripped.app_grants += 1;
    }
    crate::verification::mark_verified(state, user).await?;
    if !stripped.is_empty() {
        tracing::warn!(user_id = %user.id, ?stripped, "removed what was attached before the address was confirmed");
        let detail = format!(
            "attached before the address was confirmed: {} provider links, second factors {}, \
             {} app grants",
            stripped.provider_links,
            if stripped.second_factors {
                "removed"
            } else {
                "none"
            },
            stripped.app_grants
        );
        audit::record(
            state,
            meta,
            Event::own("unconfirmed_attachments_removed", &user.id).detail(detail),
        )
        .await;
    }
    Ok(stripped)
}

/// A sign-in or step-up counts as recent for this long: sensitive changes need one.
pub const STEP_UP_SECS: i64 = 15 * 60;

/// Whether the last proof of identity in a session (`last_confirmed`) is recent enough for a
/// sensitive change.
pub fn recently_confirmed(last_confirmed: Option<i64>, now: i64) -> bool {
    last_confirmed.is_some_and(|at| now - at <= STEP_UP_SECS)
}
