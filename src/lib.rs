//! Portcullis: a self-hosted identity server in one binary.
//!
//! A guided tour of the modules, roughly in the order a request meets them:

/// Builds the axum router and the shared `AppState`; every layer is explained where it is added.
pub mod app;
/// The sign-in service: password checks, what follows a first factor, step-up; no HTTP.
pub mod auth;
/// The change bus: token, client and key changes reach every node's caches at once.
pub mod bus;
/// Command-line interface: `serve`, `migrate`, `user create`, `client …`, `keys rotate`.
pub mod cli;
/// Relying-app clients: registration rules, secrets, the short client cache.
pub mod clients;
/// Wall-clock time as unix seconds, replaceable in tests.
pub mod clock;
/// One node of several: the secret-key canary, set-up warnings, the node's name and draining.
pub mod cluster;
/// Layered configuration: defaults, TOML file, `PORTCULLIS_*` environment.
pub mod config;
/// Random tokens, hashes for storing them, encryption of secrets at rest.
pub mod crypto;
/// Events for other apps: the transactional outbox, signed webhooks, NATS JetStream.
pub mod events;
/// Parsed input types used at the edge (`Email`, `NextUrl`).
pub mod input;
/// Outgoing mail: SMTP, or `.eml` files in the data directory.
pub mod mail;
/// Passkeys (WebAuthn): registering credentials and proving with them; the account's passkeys.
pub mod passkeys;
/// Password hashing (argon2id on a bounded pool) and the password policy.
pub mod password;
/// Browser session store: SQL (SQLite/Postgres) or Redis behind one enum.
pub mod sessions;
/// All SQL, as static strings: the `Store` over a SQLite or Postgres pool, one file per table.
pub mod store;
/// Rate limits kept in the database.
pub mod throttle;
/// The token service: issues, checks, rotates and revokes tokens; signing keys and JWS; no HTTP.
pub mod tokens;
/// Shared web plumbing: errors, CSRF, security headers, the signed-in user, page layout.
pub mod web;

/// `/account`: the signed-in user's page, and changing the password.
pub mod account;
/// `/admin`: users, clients and the audit log, for admins.
pub mod admin;
/// The JSON API for first-party apps (`/api/v1`), with its OpenAPI document.
pub mod api;
/// The audit log: recording security-relevant events.
pub mod audit;
/// `/`: the home page.
pub mod home;
/// `/login` and `/logout`, with throttling.
pub mod login;
/// `/account/security`: authenticator app, email codes, recovery codes.
pub mod mfa;
/// The OAuth 2.0 / OpenID Connect provider: the protocol adapter over the token service
/// (authorize and consent, token, userinfo, revocation, introspection, discovery, logout).
pub mod oauth;
/// `/health` and `/ready`.
pub mod ops;
/// "Forgot password?": reset links by mail.
pub mod password_reset;
/// `/signup`: account creation.
pub mod signup;
/// "Sign in with Google" and other upstream OpenID providers.
pub mod upstream;
/// Email verification links.
pub mod verification;
