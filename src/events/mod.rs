//! Events: what happened to accounts and clients, told to other apps. Each event is written in
//! the database transaction of the change it describes (the transactional outbox), as a
//! CloudEvents 1.0 JSON document, and delivered by the workers of every node to the webhook
//! endpoints (Standard Webhooks) and to NATS JetStream, at least once and in order per subject.

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::Config;

pub mod cli;
mod nats;
pub(crate) mod queue;
pub mod webhooks;
pub mod worker;

/// The closed set of event types. On the wire `io.portcullis.<name>`; endpoints subscribe by
/// `<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    UserCreated,
    UserUpdated,
    UserEmailVerified,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    PasswordChanged,
    PasswordReset,
    SecondFactorAdded,
    SecondFactorRemoved,
    ProviderLinked,
    ProviderUnlinked,
    SignInSucceeded,
    SignInFailed,
    ConsentGranted,
    ConsentRevoked,
    RefreshTokenReuseDetected,
    SessionsEndedEverywhere,
    ClientCreated,
    ClientChanged,
    ClientDeleted,
    SigningKeyRotated,
}

impl EventType {
    pub const ALL: [Self; 22] = [
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserEmailVerified,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::SecondFactorAdded,
        Self::SecondFactorRemoved,
        Self::ProviderLinked,
        Self::ProviderUnlinked,
        Self::SignInSucceeded,
        Self::SignInFailed,
        Self::ConsentGranted,
        Self::ConsentRevoked,
        Self::RefreshTokenReuseDetected,
        Self::SessionsEndedEverywhere,
        Self::ClientCreated,
        Self::ClientChanged,
        Self::ClientDeleted,
        Self::SigningKeyRotated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::UserEmailVerified => "user.email_verified",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
            Self::PasswordChanged => "password.changed",
            Self::PasswordReset => "password.reset",
            Self::SecondFactorAdded => "second_factor.added",
            Self::SecondFactorRemoved => "second_factor.removed",
            Self::ProviderLinked => "provider.linked",
            Self::ProviderUnlinked => "provider.unlinked",
            Self::SignInSucceeded => "sign_in.succeeded",
            Self::SignInFailed => "sign_in.failed",
            Self::ConsentGranted => "consent.granted",
            Self::ConsentRevoked => "consent.revoked",
            Self::RefreshTokenReuseDetected => "refresh_token.reuse_detected",
            Self::SessionsEndedEverywhere => "sessions.ended_everywhere",
            Self::ClientCreated => "client.created",
            Self::ClientChanged => "client.changed",
            Self::ClientDeleted => "client.deleted",
            Self::SigningKeyRotated => "signing_key.rotated",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().trim_start_matches(TYPE_PREFIX);
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Sign-ins are many; they are written only when the operator asks
    /// (`PORTCULLIS_SIGN_IN_EVENTS=true`).
    fn is_high_volume(self) -> bool {
        matches!(self, Self::SignInSucceeded | Self::SignInFailed)
    }
}

/// CloudEvents `type` = this prefix + the event's name.
pub const TYPE_PREFIX: &str = "io.portcullis.";

/// An event ready to be written in the transaction of its change.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The CloudEvents `id` (a UUIDv7), also the webhook-id and the NATS message id: stable
    /// across retries, so receivers de-duplicate by it.
    pub id: String,
    pub kind: EventType,
    pub subject: String,
    pub time: i64,
    /// The CloudEvents JSON document, exactly as delivered.
    pub document: String,
    /// Also published to NATS (this node has `PORTCULLIS_NATS_URL`).
    pub to_nats: bool,
}

/// Builds events for this deployment: its public URL as `source`, which types are written.
#[derive(Clone, Debug)]
pub struct Events {
    source: String,
    enabled: bool,
    sign_ins: bool,
    nats: bool,
    clock: Clock,
}

impl Events {
    pub fn from_config(config: &Config, clock: Clock) -> Self {
        Self {
            source: config.public_url.as_str().trim_end_matches('/').to_string(),
            enabled: config.events.enabled,
            sign_ins: config.events.sign_in_events,
            nats: config.events.nats_url.is_some(),
            clock,
        }
    }

    /// The event of `kind` about `subject` (a user or client id) with `data`, or none when
    /// events of that kind are off. `data` never carries secrets or password material.
    pub fn event(&self, kind: EventType, subject: &str, data: Value) -> Option<NewEvent> {
        if !self.enabled || (kind.is_high_volume() && !self.sign_ins) {
            return None;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let time = self.clock.now();
        let document = json!({
            "specversion": "1.0",
            "id": id,
            "source": self.source,
            "type": format!("{TYPE_PREFIX}{}", kind.name()),
            "time": rfc3339(time),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": data,
        })
        .to_string();
        Some(NewEvent {
            id,
            kind,
            subject: subject.to_string(),
            time,
            document,
            to_nats: self.nats,
        })
    }

    /// An event about an account: its id and address (and nothing else of it).
    pub fn about_user(&self, kind: EventType, user: &crate::store::User) -> Option<NewEvent> {
        self.event(
            kind,
            &user.id,
            json!({ "user_id": user.id, "email": user.email }),
        )
    }

    /// An event about an account with more `data` (an object) after its id and address.
    pub fn for_user(
        &self,
        kind: EventType,
        user: &crate::store::User,
        extra: Value,
    ) -> Option<NewEvent> {
        let data = json!({ "user_id": user.id, "email": user.email });
        self.event(kind, &user.id, merged(data, extra))
    }

    /// An event about a relying app (its id is the subject).
    pub fn for_client(&self, kind: EventType, client_id: &str, extra: Value) -> Option<NewEvent> {
        self.event(
            kind,
            client_id,
            merged(json!({ "client_id": client_id }), extra),
        )
    }

    /// `user.created` with the account as created.
    pub fn user_created(&self, user: &crate::store::User, via: &str) -> Option<NewEvent> {
        self.event(EventType::UserCreated, &user.id, user_data(user, via))
    }
}

/// `data` with the fields of `extra` (an object) after its own.
fn merged(mut data: Value, extra: Value) -> Value {
    if let (Some(fields), Value::Object(extra)) = (data.as_object_mut(), extra) {
        fields.extend(extra);
    }
    data
}

/// What events say about an account: never its password hash, factors or secrets.
pub fn user_data(user: &crate::store::User, via: &str) -> Value {
    json!({
        "user_id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "display_name": user.display_name,
        "roles": user.roles,
        "disabled": user.disabled,
        "created_at": rfc3339(user.created_at),
        "via": via,
    })
}

pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
