use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::routing::get;
use tower_sessions::Session;

use crate::app::AppState;
use crate::web::{AppError, Layout, MaybeUser};

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

#[derive(Template, WebTemplate)]
#[template(path = "home/index.html")]
struct HomePage {
    layout: Layout,
}

async fn home(session: Session, MaybeUser(user): MaybeUser) -> Result<HomePage, AppError> {
    Ok(HomePage {
        layout: Layout::page(&session, user.as_ref()).await?,
    })
}
