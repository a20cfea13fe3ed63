//! Checking and issuing second factors, shared by sign-in and the security page.

use totp_rs::{Algorithm, TOTP};

use crate::app::AppState;
use crate::crypto;
use crate::mail::messages;
use crate::store::User;
use crate::web::AppError;

/// RFC 6238 defaults that every authenticator app understands: SHA-1, 6 digits, 30 s.
const STEP_SECS: i64 = 30;
const DIGITS: usize = 6;
/// Email codes live 10 minutes and allow 5 tries.
pub const EMAIL_CODE_SECS: i64 = 10 * 60;
pub const EMAIL_CODE_ATTEMPTS: i64 = 5;
pub const RECOVERY_CODE_COUNT: usize = 10;

/// The outcome of checking a code, each with its own message for the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Accepted,
    Wrong,
    /// A TOTP code whose time step was already used.
    Replayed,
    /// An email code that is missing, expired, or out of attempts.
    Expired,
}

impl CodeCheck {
    pub fn message(self) -> &'static str {
        match self {
            Self::Accepted => "",
            Self::Wrong => "That code is not right. Check it and try again.",
            Self::Replayed => "That code was already used. Wait for the next one in your app.",
            Self::Expired => "That code has expired or was tried too often. Send a new one.",
        }
    }
}

/// Builds the TOTP for a user; the label is the account email.
pub fn totp(state: &AppState, secret: Vec<u8>, email: &str) -> Result<TOTP, AppError> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS as u64,
        secret,
        Some(state.config.totp_issuer.clone()),
        email.to_string(),
    )
    .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot build the TOTP: {e}")))
}

/// The time step a code belongs to, accepting ±1 step for clock drift.
fn matching_step(totp: &TOTP, code: &str, now: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS {
        return None;
    }
    let current = now / STEP_SECS;
    (current - 1..=current + 1)
        .find(|step| crypto::constant_time_eq(&totp.generate((step * STEP_SECS) as u64), &code))
}

/// Starts setting up an authenticator app: a new secret, stored encrypted and pending until a
/// code from the app confirms it (replacing any earlier pending one). Returns the secret.
pub async fn start_totp(state: &AppState, user: &User) -> Result<Vec<u8>, AppError> {
    use rand::RngCore;
    let mut secret = [0u8; 20];
    rand::rng().fill_bytes(&mut secret);
    let sealed = crypto::seal(&state.config.secret_key, &user.id, &secret);
    state
        .store
        .put_pending_totp(&user.id, &sealed, state.clock.now())
        .await?;
    Ok(secret.to_vec())
}

pub fn decrypt_secret(state: &AppState, user_id: &str, sealed: &str) -> Result<Vec<u8>, AppError> {
    crypto::open(&state.config.secret_key, user_id, sealed)
        .map_err(|e| AppError::Internal(e.into()))
}

/// Checks a code against the user's confirmed authenticator and uses its step. An authenticator
/// whose set-up was never finished proves nothing (sign-in, step-up).
pub async fn check_totp(state: &AppState, user: &User, code: &str) -> Result<CodeCheck, AppError> {
    check_totp_factor(state, user, code, false).await
}

/// Checks a code against the authenticator being set up (or the confirmed one), to finish the
/// set-up.
pub async fn check_totp_setup(
    state: &AppState,
    user: &User,
    code: &str,
) -> Result<CodeCheck, AppError> {
    check_totp_factor(state, user, code, true).await
}

async fn check_totp_factor(
    state: &AppState,
    user: &User,
    code: &str,
    pending_too: bool,
) -> Result<CodeCheck, AppError> {
    let factor = state.store.totp_factor(&user.id).await?;
    let Some(factor) = factor.filter(|f| pending_too || f.confirmed_at.is_some()) else {
        return Ok(CodeCheck::Wrong);
    };
    let secret = decrypt_secret(state, &user.id, &factor.secret_enc)?;
    let totp = totp(state, secret, &user.email)?;
    let Some(step) = matching_step(&totp, code, state.clock.now()) else {
        return Ok(CodeCheck::Wrong);
    };
    if state.store.use_totp_step(&user.id, step).await? {
        Ok(CodeCheck::Accepted)
    } else {
        Ok(CodeCheck::Replayed)
    }
}

pub async fn totp_enabled(state: &AppState, user: &User) -> Result<bool, AppError> {
    Ok(state
        .store
        .totp_factor(&user.id)
        .await?
        .is_some_and(|f| f.confirmed_at.is_some()))
}

/// A way to pass the second step: the authenticator app, codes by email, or a passkey (while
/// passkeys are on: an operator who turns them off must not lock their owners out).
/// The account as just read: its confirmed authenticator and passkeys come with the user row.
pub async fn has_second_factor(state: &AppState, user: &User) -> Result<bool, AppError> {
    let passkey = user.has_passkey && state.passkeys.enabled();
    Ok(user.email_otp_enabled || passkey || user.totp_enabled)
}

/// Mails a fresh 6-digit code for `purpose`, replacing any earlier one.
/// The code and its mail are written in one transaction.
pub async fn send_email_code(
    state: &AppState,
    user: &User,
    purpose: &str,
    why: &str,
) -> Result<(), AppError> {
    let code = crypto::random_digits(DIGITS as u32);
    let now = state.clock.now();
    let hash = crypto::keyed_hash(&state.config.secret_key, &code);
    let mail = crate::mail::queue::sealed(
        &state.config.secret_key,
        &user.email,
        &messages::email_code(&code, why),
        now,
    );
    state
        .store
        .put_email_code(&user.id, purpose, &hash, now, now + EMAIL_CODE_SECS, &mail)
        .await?;
    Ok(())
}

pub async fn check_email_code(
    state: &AppState,
    user: &User,
    purpose: &str,
    code: &str,
) -> Result<CodeCheck, AppError> {
    let Some(stored) = state.store.email_code(&user.id, purpose).await? else {
        return Ok(CodeCheck::Expired);
    };
    if stored.expires_at <= state.clock.now() || stored.attempts >= EMAIL_CODE_ATTEMPTS {
        return Ok(CodeCheck::Expired);
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let hash = crypto::keyed_hash(&state.config.secret_key, &code);
    if !crypto::constant_time_eq(&hash, &stored.code_hash) {
        state
            .store
            .count_email_code_attempt(&user.id, purpose)
            .await?;
        return Ok(CodeCheck::Wrong);
    }
    // Deleting is the single use: of two concurrent uses only one deletes the row.
    if state.store.delete_email_code(&user.id, purpose).await? {
        Ok(CodeCheck::Accepted)
    } else {
        Ok(CodeCheck::Expired)
    }
}

/// Recovery codes look like `k3q7m-x2p9a`; case, spaces and dashes do not matter.
fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub async fn check_recovery_code(
    state: &AppState,
    user: &User,
    code: &str,
) -> Result<CodeCheck, AppError> {
    let normalised = normalise_recovery_code(code);
    if normalised.len() != 10 {
        return Ok(CodeCheck::Wrong);
    }
    let hash = crypto::keyed_hash(&state.config.secret_key, &normalised);
    if state
        .store
        .use_recovery_code(&user.id, &hash, state.clock.now())
        .await?
    {
        Ok(CodeCheck::Accepted)
    } else {
        Ok(CodeCheck::Wrong)
    }
}

/// Replaces the user's recovery codes with ten new ones and returns them for showing once.
pub async fn issue_recovery_codes(state: &AppState, user: &User) -> Result<Vec<String>, AppError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let raw: String = (0..10)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| crypto::keyed_hash(&state.config.secret_key, &normalise_recovery_code(c)))
        .collect();
    state
        .store
        .replace_recovery_codes(&user.id, &hashes)
        .await?;
    Ok(codes)
}

/// When the last factor goes, the recovery codes go with it.
pub async fn forget_recovery_codes_if_unprotected(
    state: &AppState,
    user_id: &str,
) -> Result<(), AppError> {
    let Some(user) = state.store.find_user_by_id(user_id).await? else {
        return Ok(());
    };
    if !user.has_passkey && !has_second_factor(state, &user).await? {
        state.store.delete_recovery_codes(user_id).await?;
    }
    Ok(())
}

/// The secret as people type it: base32 in groups of four.
pub fn grouped_secret(totp: &TOTP) -> String {
    totp.get_secret_base32()
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|chunk| chunk.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://` URI as an inline SVG QR code, with a white quiet zone (also in dark mode).
pub fn qr_svg(uri: &str) -> Result<String, AppError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot draw the QR code: {e}")))?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    // Inline in HTML: drop the XML declaration.
    Ok(match image.find("<svg") {
        Some(start) => image[start..].to_string(),
        None => image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_ignore_case_spaces_and_dashes() {
        assert_eq!(normalise_recovery_code(" K3Q7M-x2p9a "), "k3q7mx2p9a");
    }

    #[test]
    fn codes_match_within_one_step_only() {
        let totp =
            TOTP::new(Algorithm::SHA1, 6, 1, 30, vec![7; 20], None, "a".into()).expect("totp");
        let now = 1_700_000_000;
        let step = now / 30;
        let current = totp.generate((step * 30) as u64);
        assert_eq!(matching_step(&totp, &current, now), Some(step));
        let previous = totp.generate(((step - 1) * 30) as u64);
        assert_eq!(matching_step(&totp, &previous, now), Some(step - 1));
        let old = totp.generate(((step - 3) * 30) as u64);
        assert_eq!(matching_step(&totp, &old, now), None);
        assert_eq!(matching_step(&totp, "12345", now), None);
    }
}
