//! Integration tests: each starts the real server on 127.0.0.1 and talks to it as a browser
//! (a cookie-keeping HTTP client that does not follow redirects) or as the CLI would.
//!
//! Every test runs twice: on SQLite with database sessions (`sqlite::…`), and on Postgres with
//! Redis sessions (`postgres_redis::…`) when `PORTCULLIS_TEST_POSTGRES_URL` and
//! `PORTCULLIS_TEST_REDIS_URL` are set, as they are in CI.

// A failed expectation in a test is a panic with a message: that is what tests are for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod helpers;

mod account;
mod admin;
mod api;
mod browser;
mod cli;
mod cluster;
mod email;
mod events;
mod login;
mod metrics;
mod oauth;
mod oidc_flow;
mod overload;
mod passkeys;
mod prometheus;
mod races;
mod regions;
mod remote;
mod security;
mod sessions;
mod sign_in_rules;
mod signup;
mod slow_clients;
mod smtp_sink;
mod store;
mod token_rules;
mod traces;
mod two_factor;
mod upstream;
mod visitors;
