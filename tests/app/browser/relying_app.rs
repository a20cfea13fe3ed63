//! A relying app's sign-in through the hosted pages, in a real browser: the app is a small
//! server of its own (another origin), the person signs in at Portcullis, and the app redeems
//! the code with the `openidconnect` crate as a real app would.

use std::sync::Arc;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use tokio::net::TcpListener;

use super::{Browser, Tab};
use crate::helpers::{PASSWORD, TestApp, unique_email};

backend_tests!(
    a_relying_app_gets_its_code_after_consent_and_then_after_one_press_of_sign_in,
    a_client_that_skips_consent_gets_its_code_after_one_press_of_sign_in,
    a_new_person_creates_an_account_inside_an_app_sign_in_and_lands_in_the_app,
    prompt_none_answers_the_app_without_pages_with_and_without_a_session,
    rp_initiated_logout_returns_to_the_registered_page,
);

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The app: its own little web server on another origin, and its OpenID client.
pub struct RelyingApp {
    pub url: String,
    client: Client,
    _server: tokio::task::JoinHandle<()>,
}

/// One authorization request the app sent the browser off with.
pub struct Request {
    pub url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

pub const APP_NAME: &str = "Photo Album";

impl RelyingApp {
    /// Starts the app's server and registers it at `app` with `extra` CLI options.
    pub async fn register(app: &TestApp, extra: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the app");
        let url = format!("http://{}", listener.local_addr().expect("app address"));
        let page = |text: &'static str| {
            Html(format!(
                "<!doctype html><html><head><title>{APP_NAME}</title>\
                 <link rel=\"icon\" href=\"data:,\"></head><body><p>{text}</p></body></html>"
            ))
        };
        let router = Router::new()
            .route(
                "/callback",
                get(move || async move { page("Photo Album got an answer.") }),
            )
            .route(
                "/bye",
                get(move || async move { page("Signed out of Photo Album.") }),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let redirect = format!("{url}/callback");
        let bye = format!("{url}/bye");
        let mut args = vec![
            "client",
            "create",
            "--name",
            APP_NAME,
            "--redirect-uri",
            &redirect,
            "--post-logout-redirect-uri",
            &bye,
        ];
        args.extend_from_slice(extra);
        let out = app.run_cli(&args).await;
        let id = out[0]["client_id"].as_str().expect("client id").to_string();
        let secret = out[0]["client_secret"].as_str().map(str::to_string);
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(app.url.clone()).expect("issuer"),
            &http(),
        )
        .await
        .expect("discovery");
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(id),
            secret.map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::new(redirect).expect("redirect"));
        Self {
            url,
            client,
            _server: server,
        }
    }

    /// A new authorization request for `openid email`, with PKCE, and `prompt` when given.
    pub fn request(&self, prompt: Option<&str>) -> Request {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge);
        if let Some(prompt) = prompt {
            request = request.add_extra_param("prompt", prompt);
        }
        let (url, state, nonce) = request.url();
        Request {
            url: url.to_string(),
            state,
            nonce,
            verifier,
        }
    }

    /// The answer the browser brought to the app's callback: its query parameters, after the
    /// state was checked as the app would.
    pub async fn answer(&self, tab: &Tab, request: &Request) -> Vec<(String, String)> {
        let url = tab.url().await;
        assert!(
            url.as_str().starts_with(&format!("{}/callback", self.url)),
            "the browser is back at the app: {url}; it reads:\n{}",
            tab.text().await
        );
        tab.assert_reads("Photo Album got an answer.").await;
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let state = params.iter().find(|(k, _)| k == "state").map(|(_, v)| v);
        assert_eq!(
            state,
            Some(request.state.secret()),
            "the app's state came back"
        );
        params
    }

    /// Redeems the code the browser brought back and checks the ID token; returns its `email`
    /// claim and the raw ID token.
    pub async fn redeem(&self, tab: &Tab, request: Request) -> (String, String) {
        let params = self.answer(tab, &request).await;
        let code = params
            .iter()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("a code in the answer: {params:?}"));
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .expect("token endpoint")
            .set_pkce_verifier(request.verifier)
            .request_async(&http())
            .await
            .expect("the code is redeemed");
        assert!(!tokens.access_token().secret().is_empty());
        let id_token = tokens.id_token().expect("an ID token");
        let claims = id_token
            .claims(&self.client.id_token_verifier(), &request.nonce)
            .expect("a valid ID token");
        let email = claims.email().map(|e| e.to_string()).unwrap_or_default();
        (email, id_token.to_string())
    }
}

fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Signs in on the sign-in page the browser shows.
pub async fn sign_in_here(tab: &Tab, email: &str) {
    tab.assert_at("/login").await;
    tab.fill("email", email).await;
    tab.fill("password", PASSWORD).await;
    tab.press("Sign in").await;
}

/// A person with an account (signed up by an HTTP client of its own, so the browser is not
/// signed in); returns the email.
pub async fn person(app: &TestApp) -> String {
    person_with_email(app, &unique_email()).await
}

/// An account at `app` for `email` with the test password, made without the browser.
pub async fn person_with_email(app: &TestApp, email: &str) -> String {
    let client = app.fresh_client_with_cookies();
    let csrf = app.csrf_token_with(&client, "/signup").await;
    let response = app
        .post_form_with(
            &client,
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("email", email),
                ("password", PASSWORD),
                ("display_name", ""),
            ],
        )
        .await;
    assert_eq!(
        response.status(),
        reqwest::StatusCode::SEE_OTHER,
        "signed up"
    );
    email.to_string()
}

async fn a_relying_app_gets_its_code_after_consent_and_then_after_one_press_of_sign_in(
    app: TestApp,
) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let rp = RelyingApp::register(&app, &[]).await;
    let email = person(&app).await;
    let tab = browser.window().await;

    let first = rp.request(None);
    tab.open(&first.url).await;
    sign_in_here(&tab, &email).await;
    tab.assert_at("/oauth/authorize").await;
    tab.assert_reads(&format!("Allow {APP_NAME} to use your account?"))
        .await;
    tab.press("Allow").await;
    assert_eq!(rp.redeem(&tab, first).await.0, email);

    // Signed out, the person comes back: consent is remembered, so the one press of "Sign in"
    // must bring the code to the app (CSP form-action covers this redirect chain).
    tab.open(&format!("{}/account", app.url)).await;
    tab.press("Sign out").await;
    tab.assert_reads("You have signed out.").await;
    let again = rp.request(None);
    tab.open(&again.url).await;
    sign_in_here(&tab, &email).await;
    assert_eq!(rp.redeem(&tab, again).await.0, email);
    tab.assert_no_problems();
}

async fn a_client_that_skips_consent_gets_its_code_after_one_press_of_sign_in(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let rp = RelyingApp::register(&app, &["--skip-consent"]).await;
    let email = person(&app).await;
    let tab = browser.window().await;
    let request = rp.request(None);
    tab.open(&request.url).await;
    sign_in_here(&tab, &email).await;
    assert_eq!(rp.redeem(&tab, request).await.0, email);
    tab.assert_no_problems();
}

async fn a_new_person_creates_an_account_inside_an_app_sign_in_and_lands_in_the_app(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let rp = RelyingApp::register(&app, &["--skip-consent"]).await;
    let tab = browser.window().await;
    let request = rp.request(None);
    tab.open(&request.url).await;
    tab.press("Create an account").await;
    tab.assert_at("/signup").await;
    let email = unique_email();
    tab.fill("email", &email).await;
    tab.fill("password", PASSWORD).await;
    tab.press("Create account").await;
    assert_eq!(rp.redeem(&tab, request).await.0, email);
    tab.assert_no_problems();
}

async fn prompt_none_answers_the_app_without_pages_with_and_without_a_session(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let rp = RelyingApp::register(&app, &["--skip-consent"]).await;
    let email = person(&app).await;
    let tab = browser.window().await;

    let silent = rp.request(Some("none"));
    tab.open(&silent.url).await;
    let answer = rp.answer(&tab, &silent).await;
    assert!(
        answer.contains(&("error".into(), "login_required".into())),
        "no session: {answer:?}"
    );

    let request = rp.request(None);
    tab.open(&request.url).await;
    sign_in_here(&tab, &email).await;
    rp.redeem(&tab, request).await;

    let silent = rp.request(Some("none"));
    tab.open(&silent.url).await;
    assert_eq!(rp.redeem(&tab, silent).await.0, email);
    tab.assert_no_problems();
}

async fn rp_initiated_logout_returns_to_the_registered_page(app: TestApp) {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let rp = Arc::new(RelyingApp::register(&app, &["--skip-consent"]).await);
    let email = person(&app).await;
    let tab = browser.window().await;
    let request = rp.request(None);
    tab.open(&request.url).await;
    sign_in_here(&tab, &email).await;
    let (_, id_token) = rp.redeem(&tab, request).await;
    let bye = format!("{}/bye", rp.url);
    let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();

    // With the ID token as hint: signed out at once and sent back.
    tab.open(&format!(
        "{}/oauth/logout?id_token_hint={}&post_logout_redirect_uri={}&state=s1",
        app.url,
        encode(&id_token),
        encode(&bye)
    ))
    .await;
    tab.assert_reads("Signed out of Photo Album.").await;
    assert!(tab.url().await.as_str().ends_with("/bye?state=s1"));
    tab.open(&format!("{}/account", app.url)).await;
    tab.assert_at("/login").await;

    // Without a hint the person is asked, and the answer (a form post) returns to the app.
    let request = rp.request(None);
    tab.open(&request.url).await;
    sign_in_here(&tab, &email).await;
    let (_, _) = rp.redeem(&tab, request).await;
    let client_id = rp.client.client_id().as_str().to_string();
    tab.open(&format!(
        "{}/oauth/logout?client_id={}&post_logout_redirect_uri={}&state=s2",
        app.url,
        encode(&client_id),
        encode(&bye)
    ))
    .await;
    tab.assert_reads("Sign out?").await;
    tab.press("Sign out").await;
    tab.assert_reads("Signed out of Photo Album.").await;
    assert!(tab.url().await.as_str().ends_with("/bye?state=s2"));
    tab.open(&format!("{}/account", app.url)).await;
    tab.assert_at("/login").await;
    tab.assert_no_problems();
}
