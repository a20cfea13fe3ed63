//! Form posts end on our own origin: a redirect that may leave the site becomes a page that
//! continues by a plain navigation.
//!
//! CSP Level 3 §6.4.1 (`form-action`) applies to every redirect that follows a form submission
//! (Chromium and WebKit enforce it), so with `form-action 'self'` the chain
//! `POST /login → 303 /oauth/authorize → 303 https://app.example/callback?code=…` is blocked at
//! its last hop, silently: the person stays on the sign-in page. Naming the app's origin in
//! `form-action` would not be enough: the app's callback may itself redirect on (to another
//! server that uses this one as its upstream provider, say), and every hop is checked against
//! the policy of the page that held the form. Instead, a POST whose redirect may leave the site
//! is answered with a small same-origin page that moves on at once (`<meta http-equiv=refresh>`,
//! mirrored in the `Refresh` header for non-browser clients). That navigation is no form
//! submission, so the strict policy stays the same on every page.

use askama::Template;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::Layout;

#[derive(Template)]
#[template(path = "web/continue.html")]
struct ContinuePage {
    layout: Layout,
    target: String,
}

/// Whether a redirect to `location` may end outside this site: an absolute URL, or one of our
/// endpoints that redirect to apps and providers (`/oauth/authorize`, `/oauth/logout`,
/// `/auth/oauth/{provider}`).
fn may_leave_site(location: &str) -> bool {
    if !location.starts_with('/') || location.starts_with("//") {
        return true;
    }
    let path = location.split(['?', '#']).next().unwrap_or_default();
    path.starts_with("/oauth/")
        || path
            .strip_prefix("/auth/oauth/")
            .is_some_and(|provider| !provider.contains('/'))
}

/// Middleware for the page routes: rewrites such redirects of POST requests.
pub async fn keep_form_posts_on_site(request: Request, next: Next) -> Response {
    let is_post = request.method() == Method::POST;
    let response = next.run(request).await;
    if !is_post || !response.status().is_redirection() {
        return response;
    }
    let Some(location) = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| may_leave_site(l))
        .map(str::to_string)
    else {
        return response;
    };
    continue_page(response, location)
}

/// The same response (cookies and all) as a 200 page that navigates to `target`.
fn continue_page(response: Response, target: String) -> Response {
    let page = ContinuePage {
        layout: Layout::anonymous(),
        target: target.clone(),
    };
    let html = match page.render() {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the continue page");
            return response;
        }
    };
    let refresh = match HeaderValue::from_str(&format!("0;url={target}")) {
        Ok(value) => value,
        Err(_) => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.status = axum::http::StatusCode::OK;
    parts.headers.remove(header::LOCATION);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::REFRESH, refresh);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(html))
}

#[cfg(test)]
mod tests {
    use super::may_leave_site;

    #[test]
    fn redirects_that_can_reach_another_site_are_recognised() {
        for leaves in [
            "https://app.example/callback?code=1",
            "//evil.example/",
            "/oauth/authorize?client_id=a",
            "/oauth/logout",
            "/auth/oauth/google?next=/account",
        ] {
            assert!(may_leave_site(leaves), "{leaves}");
        }
        for stays in [
            "/account",
            "/login/verify?method=email",
            "/auth/oauth/google/link",
            "/",
        ] {
            assert!(!may_leave_site(stays), "{stays}");
        }
    }
}
