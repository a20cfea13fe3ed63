//! Passkeys (WebAuthn Level 3, with `webauthn-rs`): registering a credential and proving with
//! one, for the pages and the API alike. A ceremony's state (its challenge among it) travels
//! between begin and finish sealed with the server key in the handle the browser or app holds,
//! so beginning one (on every view of the sign-in page) writes nothing; finishing records the
//! handle, so a challenge is single use even across nodes. The signature counter only moves
//! forward (WebAuthn §6.1.1, §7.2 step 22). Every credential is made discoverable with user verification required, so one passkey
//! is a whole sign-in (`amr` `hwk`/`swk` + `user`, RFC 8176) and also a second factor after a
//! password.

mod account;
mod sign_in;

pub use account::{passkey_listing, remove_passkey};

/// The pages' passkey routes: the account's passkeys, and proving with one.
pub fn router() -> axum::Router<AppState> {
    account::routes().merge(sign_in::routes())
}

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

use crate::app::AppState;
use crate::audit::{self, Event, RequestMeta};
use crate::config::{Config, PasskeySettings};
use crate::crypto;
use crate::store::{PasskeyRow, PasskeyUse, StoreError, User};

/// A ceremony may take this long from begin to finish (a login page left open included).
const CEREMONY_SECS: i64 = 10 * 60;
/// Names people give their passkeys ("Work laptop"), at most this many characters.
pub const NAME_MAX: usize = 60;

/// The relying party, when passkeys are on.
#[derive(Clone, Default)]
pub struct Passkeys(Option<Arc<Webauthn>>);

impl Passkeys {
    /// Built at start-up from the checked settings: a relying-party id that fits the public
    /// URL (the configuration has made sure it does).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let PasskeySettings::On { rp_id } = &config.passkeys else {
            if let PasskeySettings::Off { why: Some(why) } = &config.passkeys {
                tracing::warn!("passkeys are off: {why}");
            }
            return Ok(Self(None));
        };
        let origin = Url::parse(&config.public_origin())?;
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .and_then(|builder| builder.rp_name(&config.totp_issuer).build())
            .map_err(|e| anyhow::anyhow!("cannot set up passkeys for {rp_id} at {origin}: {e}"))?;
        Ok(Self(Some(Arc::new(webauthn))))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn, PasskeyError> {
        self.0.as_deref().ok_or(PasskeyError::Off)
    }
}

/// What a ceremony is for; a ceremony finishes only for its own purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Adding a passkey to a signed-in account.
    Register,
    /// Signing in with a passkey alone (discoverable credential).
    SignIn,
    /// The second step after a password.
    SecondFactor,
    /// Confirming it is the person before a sensitive change (step-up).
    Confirm,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
            Self::SecondFactor => "second_factor",
            Self::Confirm => "confirm",
        }
    }
}

/// A ceremony begun: the handle to finish it with, and the options for
/// `navigator.credentials.create()` / `.get()` (WebAuthn JSON: `{"publicKey": {…}}`).
pub struct Ceremony {
    pub handle: String,
    pub options: Value,
}

impl Ceremony {
    /// The options with the handle beside them (`{"ceremony": …, "publicKey": {…}}`), as the
    /// pages' script and the API's callers receive them.
    pub fn into_value(self) -> Value {
        let mut options = self.options;
        options["ceremony"] = Value::String(self.handle);
        options
    }

    pub fn into_json(self) -> String {
        self.into_value().to_string()
    }
}

/// Why a passkey was not accepted. Each has a sentence for the person; the details of a
/// refusal go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("passkeys are off on this server")]
    Off,
    #[error("the ceremony is unknown, expired or used")]
    Expired,
    #[error("the credential is not WebAuthn JSON")]
    Malformed,
    #[error("WebAuthn refused the credential: {0}")]
    Refused(WebauthnError),
    #[error("no such passkey here")]
    Unknown,
    #[error("the signature counter did not move forward")]
    Cloned,
    #[error("the passkey is registered already")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl PasskeyError {
    /// What the person reads.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Off => "Passkeys are not available on this server.",
            Self::Expired => "That took too long or was already used. Try again.",
            Self::Malformed | Self::Refused(_) => {
                "That passkey could not be checked. Try again, or use another way."
            }
            Self::Unknown => "That passkey is not registered for this account.",
            Self::Cloned => {
                "That passkey was refused: it may have been copied. Use another way to sign in."
            }
            Self::Duplicate => "That passkey is already registered.",
            Self::Store(_) | Self::Internal(_) => "Something went wrong. Try again.",
        }
    }

    /// A failure of ours (or the database's), not of the credential.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Internal(_))
    }
}

impl From<PasskeyError> for crate::web::AppError {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::Store(e) => e.into(),
            PasskeyError::Internal(e) => Self::Internal(e),
            PasskeyError::Off => Self::NotFound,
            other => Self::BadRequest(other.message().into()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Internal(anyhow::anyhow!("{e}"))
}

/// The WebAuthn user handle of an account: its id (a random UUID, no personal data).
fn user_handle(user: &User) -> Result<Uuid, PasskeyError> {
    Uuid::parse_str(&user.id).map_err(|e| internal(format!("user id is not a UUID: {e}")))
}

/// What a handle carries, sealed: whose ceremony, until when, and webauthn-rs's state.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedCeremony {
    user: Option<String>,
    expires_at: i64,
    state: Value,
}

/// The sealing context: a handle opens only for its own purpose.
fn ceremony_context(purpose: Purpose) -> String {
    format!("passkey ceremony: {}", purpose.name())
}

fn put_ceremony(
    state: &AppState,
    user: Option<&User>,
    purpose: Purpose,
    saved: &impl serde::Serialize,
    options: Value,
) -> Result<Ceremony, PasskeyError> {
    let sealed = SealedCeremony {
        user: user.map(|u| u.id.clone()),
        expires_at: state.clock.now() + CEREMONY_SECS,
        state: serde_json::to_value(saved).map_err(internal)?,
    };
    let plaintext = serde_json::to_vec(&sealed).map_err(internal)?;
    let handle = crypto::seal(
        &state.config.secret_key,
        &ceremony_context(purpose),
        &plaintext,
    );
    Ok(Ceremony { handle, options })
}

/// Opens the handle and records its use (single use, on any node): its user and saved state.
async fn take_ceremony<T: serde::de::DeserializeOwned>(
    state: &AppState,
    purpose: Purpose,
    handle: &str,
) -> Result<(Option<String>, T), PasskeyError> {
    let opened = crypto::open(&state.config.secret_key, &ceremony_context(purpose), handle)
        .map_err(|_| PasskeyError::Expired)?;
    let sealed: SealedCeremony =
        serde_json::from_slice(&opened).map_err(|_| PasskeyError::Expired)?;
    if sealed.expires_at <= state.clock.now() {
        return Err(PasskeyError::Expired);
    }
    if !state
        .store
        .use_passkey_ceremony(&crypto::sha256_hex(handle), sealed.expires_at)
        .await?
    {
        return Err(PasskeyError::Expired);
    }
    let saved = serde_json::from_value(sealed.state).map_err(internal)?;
    Ok((sealed.user, saved))
}

fn stored_passkey(row: &PasskeyRow) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(&row.credential).map_err(internal)
}

/// Starts adding a passkey to `user`: a discoverable credential with user verification (so
/// it can sign in alone), none of the account's own credentials again.
pub async fn begin_registration(state: &AppState, user: &User) -> Result<Ceremony, PasskeyError> {
    let webauthn = state.passkeys.webauthn()?;
    let existing = state.store.passkeys_of(&user.id).await?;
    let exclude = existing
        .iter()
        .map(|row| stored_passkey(row).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let display = user.display_name.as_deref().unwrap_or(&user.email);
    let (options, registration) = webauthn
        .start_passkey_registration(user_handle(user)?, &user.email, display, Some(exclude))
        .map_err(PasskeyError::Refused)?;
    let mut options = serde_json::to_value(options).map_err(internal)?;
    // webauthn-rs asks for a non-discoverable credential; sign-in without an email needs one
    // stored on the authenticator (WebAuthn §5.4.6). Every passkey provider and FIDO2 key can.
    options["publicKey"]["authenticatorSelection"]["residentKey"] = json!("required");
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(true);
    put_ceremony(state, Some(user), Purpose::Register, &registration, options)
}

/// Finishes adding a passkey named `name` to `user`. The caller has checked the name.
pub async fn finish_registration(
    state: &AppState,
    user: &User,
    handle: &str,
    name: &str,
    credential: &str,
) -> Result<PasskeyRow, PasskeyError> {
    let webauthn = state.passkeys.webauthn()?;
    let (owner, registration): (_, PasskeyRegistration) =
        take_ceremony(state, Purpose::Register, handle).await?;
    if owner.as_deref() != Some(user.id.as_str()) {
        return Err(PasskeyError::Expired);
    }
    let credential: RegisterPublicKeyCredential =
        serde_json::from_str(credential).map_err(|_| PasskeyError::Malformed)?;
    let passkey = webauthn
        .finish_passkey_registration(&credential, &registration)
        .map_err(PasskeyError::Refused)?;
    let inner = Credential::from(passkey.clone());
    let now = state.clock.now();
    let row = PasskeyRow {
        id: crypto::random_token(),
        user_id: user.id.clone(),
        credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
        name: name.to_string(),
        credential: serde_json::to_string(&passkey).map_err(internal)?,
        sign_count: i64::from(inner.counter),
        backup_eligible: inner.backup_eligible,
        backup_state: inner.backup_state,
        created_at: now,
        last_used_at: None,
    };
    let event = state.events.for_user(
        crate::events::EventType::SecondFactorAdded,
        user,
        json!({ "method": "passkey" }),
    );
    match state.store.insert_passkey(&row, event).await {
        Ok(()) => Ok(row),
        Err(e) if e.is_unique_violation() => Err(PasskeyError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// Starts a sign-in with any passkey of this site (the browser or app lets the person pick,
/// or offers them in the email field's autofill).
pub async fn begin_sign_in(state: &AppState) -> Result<Ceremony, PasskeyError> {
    let webauthn = state.passkeys.webauthn()?;
    let (options, authentication) = webauthn
        .start_discoverable_authentication()
        .map_err(PasskeyError::Refused)?;
    let mut options = serde_json::to_value(options).map_err(internal)?;
    // The page chooses: autofill (conditional) on load, a dialog from the button.
    if let Some(options) = options.as_object_mut() {
        options.remove("mediation");
    }
    put_ceremony(state, None, Purpose::SignIn, &authentication, options)
}

/// Starts a proof with one of `user`'s passkeys (second step, step-up); `None` when the
/// account has none.
pub async fn begin_for_user(
    state: &AppState,
    user: &User,
    purpose: Purpose,
) -> Result<Option<Ceremony>, PasskeyError> {
    let webauthn = state.passkeys.webauthn()?;
    let passkeys = state
        .store
        .passkeys_of(&user.id)
        .await?
        .iter()
        .map(stored_passkey)
        .collect::<Result<Vec<_>, _>>()?;
    if passkeys.is_empty() {
        return Ok(None);
    }
    let (options, authentication) = webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(PasskeyError::Refused)?;
    let options = serde_json::to_value(options).map_err(internal)?;
    put_ceremony(state, Some(user), purpose, &authentication, options).map(Some)
}

/// A passkey proof that held.
pub struct Verified {
    pub user: User,
    pub passkey: PasskeyRow,
}

impl Verified {
    /// What the session records (`amr` later, RFC 8176): `swk` for a passkey that can be
    /// synced (its key lives in software), `hwk` for one bound to its device.
    pub fn method(&self) -> &'static str {
        if self.passkey.backup_eligible {
            "swk"
        } else {
            "hwk"
        }
    }
}

/// Finishes a proof begun for `purpose`: the ceremony is taken (single use), the assertion
/// checked (origin, relying party, challenge, user verification, signature) and its counter
/// recorded. A refused credential is recorded in the audit log under its account.
pub async fn finish(
    state: &AppState,
    meta: &RequestMeta,
    purpose: Purpose,
    handle: &str,
    credential: &str,
) -> Result<Verified, PasskeyError> {
    let result = verify(state, purpose, handle, credential).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err((_, e)) if e.is_internal() => "error",
        Err(_) => "failure",
    };
    match purpose {
        Purpose::SignIn => state.metrics.sign_in("passkey", outcome),
        _ => state.metrics.second_factor("passkey", outcome),
    }
    let (owner, error) = match result {
        Ok(verified) => return Ok(verified),
        Err(failed) => failed,
    };
    if let Some(user_id) = owner {
        let name = if matches!(error, PasskeyError::Cloned) {
            "passkey_clone_suspected"
        } else {
            "passkey_failed"
        };
        let event = Event::own(name, &user_id).detail(error.to_string());
        audit::record(state, meta, event).await;
    }
    Err(error)
}

/// The check itself; on failure, the account the credential belongs to when known.
async fn verify(
    state: &AppState,
    purpose: Purpose,
    handle: &str,
    credential: &str,
) -> Result<Verified, (Option<String>, PasskeyError)> {
    let webauthn = state.passkeys.webauthn().map_err(|e| (None, e))?;
    let credential: PublicKeyCredential =
        serde_json::from_str(credential).map_err(|_| (None, PasskeyError::Malformed))?;
    let ceremony = match purpose {
        Purpose::SignIn => take_ceremony::<DiscoverableAuthentication>(state, purpose, handle)
            .await
            .map(|(user, saved)| (user, Saved::Discoverable(saved))),
        _ => take_ceremony::<PasskeyAuthentication>(state, purpose, handle)
            .await
            .map(|(user, saved)| (user, Saved::ForUser(saved))),
    };
    let (expected_user, saved) = ceremony.map_err(|e| (None, e))?;
    let credential_id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
    let row = state
        .store
        .passkey_by_credential_id(&credential_id)
        .await
        .map_err(|e| (None, e.into()))?
        .ok_or((expected_user.clone(), PasskeyError::Unknown))?;
    let owner = Some(row.user_id.clone());
    if expected_user.as_ref().is_some_and(|id| *id != row.user_id) {
        return Err((expected_user, PasskeyError::Unknown));
    }
    let user = state
        .store
        .find_user_by_id(&row.user_id)
        .await
        .map_err(|e| (owner.clone(), e.into()))?
        .ok_or((None, PasskeyError::Unknown))?;
    // A discoverable credential names its account (WebAuthn §7.2 step 6); it must be this one.
    if let Some(handle) = credential.get_user_unique_id() {
        let ours = user_handle(&user).map_err(|e| (owner.clone(), e))?;
        if handle != ours.as_bytes() {
            return Err((owner, PasskeyError::Unknown));
        }
    }
    let mut passkey = stored_passkey(&row).map_err(|e| (owner.clone(), e))?;
    let checked = match saved {
        Saved::Discoverable(saved) => {
            webauthn.finish_discoverable_authentication_v2(&credential, saved, &passkey)
        }
        Saved::ForUser(saved) => webauthn.finish_passkey_authentication(&credential, &saved),
    };
    let result = checked.map_err(|e| match e {
        WebauthnError::CredentialPossibleCompromise => (owner.clone(), PasskeyError::Cloned),
        other => (owner.clone(), PasskeyError::Refused(other)),
    })?;
    passkey.update_credential(&result);
    let stored = serde_json::to_string(&passkey).map_err(|e| (owner.clone(), internal(e)))?;
    let used = PasskeyUse {
        credential: &stored,
        sign_count: i64::from(result.counter()),
        backup_eligible: result.backup_eligible(),
        backup_state: result.backup_state(),
        at: state.clock.now(),
    };
    // Two assertions checked at once against the same stored counter: only one moves it.
    if !state
        .store
        .use_passkey(&row.id, &used)
        .await
        .map_err(|e| (owner.clone(), e.into()))?
    {
        return Err((owner, PasskeyError::Cloned));
    }
    let passkey = PasskeyRow {
        sign_count: used.sign_count,
        backup_eligible: used.backup_eligible,
        backup_state: used.backup_state,
        last_used_at: Some(used.at),
        ..row
    };
    Ok(Verified { user, passkey })
}

enum Saved {
    Discoverable(DiscoverableAuthentication),
    ForUser(PasskeyAuthentication),
}

/// A name for a passkey as typed: trimmed, one line, not empty, not too long.
pub fn clean_name(name: &str) -> Result<String, &'static str> {
    let name: String = name
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if name.is_empty() {
        return Err("Give the passkey a name, such as the device it is on.");
    }
    if name.chars().count() > NAME_MAX {
        return Err("Keep the name under 60 characters.");
    }
    Ok(name)
}

/// What a person's passkey list shows.
pub struct PasskeyListing {
    pub id: String,
    pub name: String,
    pub added: String,
    pub last_used: String,
    pub synced: bool,
}

impl From<&PasskeyRow> for PasskeyListing {
    fn from(row: &PasskeyRow) -> Self {
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            added: crate::account::format_time(row.created_at),
            last_used: row
                .last_used_at
                .map(crate::account::format_time)
                .unwrap_or_else(|| "never".into()),
            synced: row.backup_state,
        }
    }
}
