//! Clients that open connections and send nothing, half a request head, or a body that never
//! comes: the server keeps answering everyone else and closes them after its timeouts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{PASSWORD, TestApp, signed_up};

backend_tests!(
    held_requests_leave_the_server_answering_and_are_closed_after_the_timeouts,
    at_the_connection_cap_new_clients_wait_for_a_free_slot,
);

const HELD: usize = 150;

/// Opens a connection and sends `bytes`, nothing more.
async fn hold(app: &TestApp, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(bytes.as_bytes()).await.expect("write");
    stream
}

/// What the server sends before it closes the connection (within `within`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&answer).into_owned())
}

async fn held_requests_leave_the_server_answering_and_are_closed_after_the_timeouts(
    mut app: TestApp,
) {
    app.restart_with(|raw| {
        raw.header_read_timeout = Duration::from_secs(3);
        raw.body_read_timeout = Duration::from_secs(3);
    })
    .await;
    let email = signed_up(&app).await;
    let mut half_heads = Vec::new();
    for _ in 0..HELD {
        half_heads.push(hold(&app, "POST /api/v1/login HTTP/1.1\r\nHost: x\r\n").await);
    }
    let mut missing_bodies = Vec::new();
    for _ in 0..20 {
        let head = "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                    Content-Length: 500\r\n\r\n{\"email\":";
        missing_bodies.push(hold(&app, head).await);
    }
    // A declared 100 MB body is refused before any of it is awaited.
    let mut huge = hold(
        &app,
        "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    let refused = read_until_closed(&mut huge, Duration::from_secs(1))
        .await
        .expect("answered at once");
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    assert!(refused.contains("payload_too_large"), "{refused}");

    // Everyone else is served meanwhile.
    let health = app.fresh_client().get(app.at("/health")).send().await;
    assert_eq!(health.expect("GET /health").status(), StatusCode::OK);
    let signed_in = app
        .fresh_client()
        .post(app.at("/api/v1/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("POST login");
    assert_eq!(signed_in.status(), StatusCode::OK);
    // …while the held connections were still open.
    let mut byte = [0u8; 1];
    assert!(
        matches!(half_heads[HELD - 1].try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the held connections were open during the checks"
    );

    // The unfinished heads are closed after the header timeout, with nothing sent.
    for stream in &mut half_heads {
        let answer = read_until_closed(stream, Duration::from_secs(10))
            .await
            .expect("closed after the header timeout");
        assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // The bodies that never came are refused after the body timeout.
    for stream in &mut missing_bodies {
        let answer = read_until_closed(stream, Duration::from_secs(10))
            .await
            .expect("closed after the body timeout");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "a client error or a closed connection: {answer}"
        );
    }
}

async fn at_the_connection_cap_new_clients_wait_for_a_free_slot(mut app: TestApp) {
    const CAP: usize = 20;
    app.restart_with(|raw| {
        raw.header_read_timeout = Duration::from_secs(2);
        raw.max_connections = Some(CAP);
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(hold(&app, "GET /health HTTP/1.1\r\n").await);
    }
    // Every slot is held: a new client waits in the backlog (no answer, no error)…
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = || app.fresh_client().get(app.at("/health")).send();
    let waiting = tokio::time::timeout(Duration::from_millis(500), health()).await;
    assert!(waiting.is_err(), "answered beyond the cap");
    // …and is served once the header timeout has freed the held slots.
    let served = tokio::time::timeout(Duration::from_secs(10), health())
        .await
        .expect("served once a slot is free")
        .expect("GET /health");
    assert_eq!(served.status(), StatusCode::OK);
}
