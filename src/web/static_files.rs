//! The stylesheet is compiled into the binary: one file to deploy, nothing to find at run time.

use axum::http::header;
use axum::response::IntoResponse;

const STYLE_CSS: &str = include_str!("../../static/style.css");

pub async fn style_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE_CSS,
    )
}
