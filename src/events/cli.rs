//! `portcullis webhook …`: endpoints managed from the command line.

use anyhow::bail;

use crate::cli::{WebhookCommand, cli_audit, close_store, open_store};
use crate::clock::Clock;
use crate::config::Config;

use super::webhooks::{self, NewEndpoint};

pub async fn run(config: Config, command: WebhookCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let now = Clock::system().now();
    let allow_private = config.events.webhook_allow_private;
    match command {
        WebhookCommand::Add {
            url,
            events,
            description,
        } => {
            let new = NewEndpoint {
                url: &url,
                events: &events,
                description: description.as_deref(),
                allow_private,
            };
            let added = webhooks::add_endpoint(&store, &config.secret_key, new, now).await?;
            cli_audit(
                &store,
                now,
                "cli.webhook_added",
                &format!("webhook {}", added.id),
            )
            .await?;
            println!(
                "{}",
                serde_json::json!({ "id": added.id, "secret": added.secret })
            );
        }
        WebhookCommand::List => {
            for endpoint in store.webhook_endpoints().await? {
                let events: Vec<&str> = endpoint.events.split_whitespace().collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "id": endpoint.id,
                        "url": endpoint.url,
                        "description": endpoint.description,
                        "events": if events.is_empty() { vec!["*"] } else { events },
                        "created_at": endpoint.created_at,
                    })
                );
            }
        }
        WebhookCommand::Remove { id } => {
            if !store.delete_webhook_endpoint(&id).await? {
                bail!("no webhook endpoint with the id {id}");
            }
            cli_audit(&store, now, "cli.webhook_removed", &format!("webhook {id}")).await?;
            eprintln!("webhook endpoint {id} removed");
        }
        WebhookCommand::RotateSecret { id } => {
            let Some(secret) =
                webhooks::rotate_secret(&store, &config.secret_key, &id, now).await?
            else {
                bail!("no webhook endpoint with the id {id}");
            };
            cli_audit(
                &store,
                now,
                "cli.webhook_secret_rotated",
                &format!("webhook {id}"),
            )
            .await?;
            println!("{}", serde_json::json!({ "id": id, "secret": secret }));
        }
        WebhookCommand::Test { id } => {
            let Some(endpoint) = store.webhook_endpoint(&id).await? else {
                bail!("no webhook endpoint with the id {id}");
            };
            let secrets = webhooks::signing_secrets(
                &config.secret_key,
                &endpoint.id,
                &endpoint.secret,
                endpoint
                    .previous_secret
                    .as_deref()
                    .zip(endpoint.previous_secret_until),
                now,
            )?;
            let event_id = uuid::Uuid::now_v7().to_string();
            let body = serde_json::json!({
                "specversion": "1.0",
                "id": event_id,
                "source": config.public_url.as_str().trim_end_matches('/'),
                "type": format!("{}webhook.test", super::TYPE_PREFIX),
                "time": super::rfc3339(now),
                "subject": endpoint.id,
                "datacontenttype": "application/json",
                "data": { "message": "A test event from portcullis webhook test." },
            })
            .to_string();
            let client = webhooks::http_client(allow_private)?;
            let answer = webhooks::post(
                &client,
                &endpoint.url,
                allow_private,
                &secrets,
                &event_id,
                &body,
            )
            .await;
            close_store(store).await;
            let out = serde_json::json!({
                "id": id,
                "event_id": event_id,
                "status": answer.status,
                "error": answer.error,
            });
            println!("{out}");
            if answer.error.is_some() {
                bail!("the endpoint did not accept the test event");
            }
            return Ok(());
        }
    }
    close_store(store).await;
    Ok(())
}
