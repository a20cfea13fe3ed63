//! The stylesheet and icons are compiled into the binary: one file to deploy, nothing to find
//! at run time.

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

const FAVICON_SVG: &str = include_str!("../../static/favicon.svg");
/// A 32×32 PNG in an ICO container, for browsers and tools that ask for `/favicon.ico`.
const FAVICON_ICO: &[u8] = include_bytes!("../../static/favicon.ico");

pub async fn favicon_svg() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON_SVG,
    )
}

pub async fn favicon_ico() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON_ICO,
    )
}

/// The one script: passkeys on the pages that offer them (`script-src 'self'`, no build step).
const PASSKEYS_JS: &str = include_str!("../../static/passkeys.js");

pub async fn passkeys_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PASSKEYS_JS,
    )
}
