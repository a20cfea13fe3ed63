//! Calls a relying app, a resource server or a person makes to a node of the real binary, by
//! the node's base URL: the cluster and the multi-region tests share them.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

pub const PASSWORD: &str = "correct horse battery staple";

/// An HTTP client that does not follow redirects, and the public URL the nodes share (the
/// issuer, and the `Origin` a browser sends with forms).
#[derive(Clone)]
pub struct Remote {
    pub http: reqwest::Client,
    pub public_url: String,
}

/// `portcullis` with only the given database, key, public URL and data directory.
pub fn portcullis(database_url: &str, secret: &str, public_url: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTCULLIS_DATABASE_URL", database_url)
        .env("PORTCULLIS_SECRET_KEY", secret)
        .env("PORTCULLIS_PUBLIC_URL", public_url)
        .env("PORTCULLIS_DATA_DIR", data_dir);
    command
}

/// Runs `command` (a `portcullis` CLI call); its stdout as JSON.
pub async fn cli_output(mut command: Command, args: &[&str]) -> Value {
    let out = command.args(args).output().await.expect("run portcullis");
    assert!(
        out.status.success(),
        "portcullis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

impl Remote {
    pub fn new(public_url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            public_url: public_url.to_string(),
        }
    }

    /// `POST /api/v1/signup` at `base`: the answer.
    pub async fn sign_up(&self, base: &str, email: &str) -> reqwest::Response {
        self.http
            .post(format!("{base}/api/v1/signup"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("POST signup")
    }

    /// `POST /api/v1/login` at `base`: the answer.
    pub async fn api_login(&self, base: &str, email: &str) -> reqwest::Response {
        self.http
            .post(format!("{base}/api/v1/login"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("POST login")
    }

    /// The first-party API's access and refresh token for `email`, signed in at `base`.
    pub async fn api_sign_in(&self, base: &str, email: &str) -> (String, String) {
        let answer: Value = self
            .api_login(base, email)
            .await
            .json()
            .await
            .expect("json");
        let token = |name: &str| {
            answer[name]
                .as_str()
                .unwrap_or_else(|| panic!("tokens from {base}: {answer}"))
                .to_string()
        };
        (token("access_token"), token("refresh_token"))
    }

    /// Ends the sign-in of `refresh` at `base` (`POST /api/v1/logout`), its access token too.
    pub async fn api_logout(&self, base: &str, refresh: &str) {
        let answer = self
            .http
            .post(format!("{base}/api/v1/logout"))
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await
            .expect("POST logout");
        assert!(
            answer.status().is_success(),
            "logout at {base}: {}",
            answer.status()
        );
    }

    /// `GET /api/v1/whoami` at `base` with `token`: its status.
    pub async fn whoami(&self, base: &str, token: &str) -> StatusCode {
        self.http
            .get(format!("{base}/api/v1/whoami"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET whoami")
            .status()
    }

    /// `GET /oauth/userinfo` at `base` with `token`: its status.
    pub async fn userinfo(&self, base: &str, token: &str) -> StatusCode {
        self.http
            .get(format!("{base}/oauth/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET userinfo")
            .status()
    }

    /// A `client_credentials` access token from `base` (a node or the balancer).
    pub async fn client_token(&self, base: &str, id: &str, secret: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("{base}/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("POST token")
            .json()
            .await
            .expect("json");
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("a token from {base}: {answer}"))
            .to_string()
    }

    /// RFC 7662 introspection at `base` by the client `id`: whether the token is active there.
    pub async fn active_at(&self, base: &str, id: &str, secret: &str, token: &str) -> bool {
        let answer: Value = self
            .http
            .post(format!("{base}/oauth/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("POST introspect")
            .json()
            .await
            .expect("json");
        answer["active"] == true
    }

    /// A browser (cookie jar, no redirects) signed in as `email` with the form at `base`.
    pub async fn browser_signed_in(&self, base: &str, email: &str) -> reqwest::Client {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser");
        let csrf = csrf_of(&browser, base, "/login").await;
        let signed_in = browser
            .post(format!("{base}/login"))
            .header(reqwest::header::ORIGIN, &self.public_url)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", email),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("POST /login");
        assert_eq!(
            signed_in.status(),
            StatusCode::SEE_OTHER,
            "signed in at {base}"
        );
        browser
    }
}

/// The CSRF token of the form on `path` at `base`, as `browser` gets it.
pub async fn csrf_of(browser: &reqwest::Client, base: &str, path: &str) -> String {
    let page = browser
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("GET a form")
        .text()
        .await
        .expect("page");
    crate::helpers::hidden_value(&page, "csrf_token")
        .unwrap_or_else(|| panic!("a csrf field on {path}: {page}"))
}
