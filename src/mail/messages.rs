//! The messages Portcullis sends, in plain words.

use super::Mail;

const IGNORE: &str = "If you did not ask for this, you can ignore this message.";

pub fn verify_email(link: &str) -> Mail {
    Mail {
        subject: "Confirm your email address".into(),
        heading: "Confirm your email address".into(),
        paragraphs: vec![
            "Confirm that this address is yours to finish setting up your account.".into(),
            "The link works once and expires in 24 hours.".into(),
        ],
        action: Some(("Confirm email address".into(), link.into())),
        code: None,
        footer: IGNORE.into(),
    }
}

pub fn password_reset(link: &str) -> Mail {
    Mail {
        subject: "Reset your password".into(),
        heading: "Reset your password".into(),
        paragraphs: vec![
            "Someone (hopefully you) asked to reset the password of your account.".into(),
            "The link works once and expires in 1 hour. After the reset, every device signed \
             in to your account is signed out."
                .into(),
        ],
        action: Some(("Choose a new password".into(), link.into())),
        code: None,
        footer: "If you did not ask for this, ignore this message: your password stays as it is."
            .into(),
    }
}

/// A 6-digit code for signing in or for turning email codes on.
pub fn email_code(code: &str, why: &str) -> Mail {
    Mail {
        subject: format!("Your code: {code}"),
        heading: "Your one-time code".into(),
        paragraphs: vec![
            format!("Use this code {why}."),
            "It expires in 10 minutes. Never share it: we will never ask you for it.".into(),
        ],
        action: None,
        code: Some(code.into()),
        footer: IGNORE.into(),
    }
}

/// What a security event says to the account's owner, for the events that change how the
/// account is signed in to (OWASP ASVS 2.2.3, 2.5.x). `None` for the others.
pub fn security_notice_text(event: &str) -> Option<&'static str> {
    Some(match event {
        "password_changed" => "Your password was changed",
        "password_reset" => "Your password was reset",
        "totp_enabled" => "An authenticator app was added to your account",
        "totp_removed" => "The authenticator app was removed from your account",
        "passkey_added" => "A passkey was added to your account",
        "passkey_renamed" => "A passkey of your account was renamed",
        "passkey_removed" | "admin.passkey_removed" => "A passkey was removed from your account",
        "passkey_clone_suspected" => {
            "A sign-in with what looks like a copy of one of your passkeys was refused"
        }
        "email_codes_enabled" => "Sign-in codes by email were turned on",
        "email_codes_disabled" => "Sign-in codes by email were turned off",
        "recovery_codes_regenerated" => {
            "New recovery codes were made (the old ones stopped working)"
        }
        "upstream_linked" => "A way to sign in with another provider was linked to your account",
        "upstream_unlinked" => {
            "A way to sign in with another provider was removed from your account"
        }
        "unconfirmed_attachments_removed" => {
            "Sign-in methods set up before your address was confirmed were removed"
        }
        _ => return None,
    })
}

/// The mail to the owner after such an event; `when` in UTC, `from` the client address.
pub fn security_notice(what: &str, when: &str, from: Option<&str>, reset_link: &str) -> Mail {
    let place = from.map(|ip| format!(" from {ip}")).unwrap_or_default();
    Mail {
        subject: format!("Security notice: {}", what.to_lowercase()),
        heading: what.into(),
        paragraphs: vec![
            format!("{what} on {when}{place}."),
            "If this was you, there is nothing to do. If not, reset your password now and check \
             the sign-in methods on your account page."
                .into(),
        ],
        action: Some(("Reset your password".into(), reset_link.into())),
        code: None,
        footer: "We send this to the account's address whenever how it is signed in to changes."
            .into(),
    }
}
