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
