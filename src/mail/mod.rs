//! Outgoing mail with lettre: SMTP when `PORTCULLIS_SMTP_URL` is set, otherwise every message is
//! logged and written as an `.eml` file under `<data dir>/mail/`, so a person trying Portcullis
//! locally can open the links.

use std::path::PathBuf;
use std::sync::Arc;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Config;

pub mod messages;

mod links;
pub mod queue;
pub use links::{mail_single_use_link, single_use_token};

/// Where mail goes: a closed set, so an enum.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Arc<Transport>,
    from: Mailbox,
    metrics: crate::ops::metrics::Metrics,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer({}, from {})", self.transport_name(), self.from)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("cannot send the message: {0}")]
    Send(String),
}

/// The content of one message, rendered to an HTML and a plain-text part from the same fields.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    pub subject: String,
    pub heading: String,
    pub paragraphs: Vec<String>,
    /// A button (HTML) or a line with the URL (text).
    pub action: Option<(String, String)>,
    /// A one-time code shown large.
    pub code: Option<String>,
    pub footer: String,
}

#[derive(Template)]
#[template(path = "mail/message.html")]
struct HtmlPart<'a> {
    mail: &'a Mail,
}

#[derive(Template)]
#[template(path = "mail/message.txt")]
struct TextPart<'a> {
    mail: &'a Mail,
}

impl Mailer {
    pub fn from_config(
        config: &Config,
        metrics: crate::ops::metrics::Metrics,
    ) -> Result<Self, MailError> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|e| MailError::Build(format!("PORTCULLIS_MAIL_FROM: {e}")))?;
        let transport = match &config.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| MailError::Build(format!("PORTCULLIS_SMTP_URL: {e}")))?
                    .build(),
            ),
            None => Transport::Files(config.data_dir.join("mail")),
        };
        Ok(Self {
            transport: Arc::new(transport),
            from,
            metrics,
        })
    }

    fn transport_name(&self) -> &'static str {
        match *self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Files(_) => "files",
        }
    }

    pub fn describe(&self) -> String {
        match &*self.transport {
            Transport::Smtp(_) => "smtp".into(),
            Transport::Files(dir) => format!("files in {}", dir.display()),
        }
    }

    pub async fn send(&self, to: &str, mail: &Mail) -> Result<(), MailError> {
        let span = tracing::info_span!("mail.send", transport = self.transport_name());
        let sent = tracing::Instrument::instrument(self.deliver(to, mail), span).await;
        self.metrics.mail(self.transport_name(), sent.is_ok());
        sent
    }

    async fn deliver(&self, to: &str, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Build(format!("recipient: {e}")))?;
        let html = HtmlPart { mail }
            .render()
            .map_err(|e| MailError::Build(e.to_string()))?;
        let text = TextPart { mail }
            .render()
            .map_err(|e| MailError::Build(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(&mail.subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &*self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?;
                tracing::info!(to = %to.email, subject = %mail.subject, "mail sent");
            }
            Transport::Files(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| MailError::Send(format!("{}: {e}", dir.display())))?;
                let name = format!(
                    "{}-{}.eml",
                    time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
                    uuid::Uuid::now_v7().simple()
                );
                let path = dir.join(name);
                tokio::fs::write(&path, message.formatted())
                    .await
                    .map_err(|e| MailError::Send(format!("{}: {e}", path.display())))?;
                // The body holds one-time links and codes: it stays in the file, out of logs.
                tracing::info!(
                    to = %to.email,
                    subject = %mail.subject,
                    file = %path.display(),
                    "mail written to a file (no PORTCULLIS_SMTP_URL set)"
                );
            }
        }
        Ok(())
    }
}
