//! One-shot messages shown on the next page ("You have signed out.").

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

const KEY: &str = "flash";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flash {
    /// `success`, `info` or `error`: used as a CSS class.
    pub kind: String,
    pub message: String,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            kind: "success".into(),
            message: message.into(),
        }
    }

    pub fn info(message: impl Into<String>) -> Self {
        Self {
            kind: "info".into(),
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            kind: "error".into(),
            message: message.into(),
        }
    }

    /// Errors interrupt screen readers; other messages are announced politely.
    pub fn role(&self) -> &'static str {
        if self.kind == "error" {
            "alert"
        } else {
            "status"
        }
    }
}

pub async fn set(session: &Session, flash: Flash) -> Result<(), tower_sessions::session::Error> {
    session.insert(KEY, flash).await
}

pub async fn take(session: &Session) -> Result<Option<Flash>, tower_sessions::session::Error> {
    // Only touch (and so save) the session when there is something to take.
    if session.get_value(KEY).await?.is_none() {
        return Ok(None);
    }
    session.remove(KEY).await
}
