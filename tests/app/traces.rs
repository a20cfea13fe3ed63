//! OpenTelemetry traces from the real binary: an OTLP/HTTP receiver in the test decodes what the
//! server sends (`opentelemetry-proto`) and finds the request span in the caller's trace, with a
//! database span under it, and the trace id in the JSON log lines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::StatusCode;

use crate::helpers::unique_email;

/// A span as received, with the service name of its resource.
struct Received {
    service: String,
    span: Span,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// An OTLP/HTTP trace receiver (protobuf) on a free port.
async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let kept = Arc::clone(&inbox);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut kept = kept.lock().expect("inbox");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            AnyValue::StringValue(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            kept.push(Received {
                                service: service.clone(),
                                span,
                            });
                        }
                    }
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

#[tokio::test]
async fn a_request_span_continues_the_callers_trace_with_a_database_span_under_it() {
    let (collector, inbox) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, url) = crate::helpers::serve_binary(
        dir.path(),
        &[
            ("PORTCULLIS_METRICS_LISTEN", "off"),
            ("PORTCULLIS_LOG_FORMAT", "json"),
            // tower_http logs each answer at debug: a line within the request's span.
            ("RUST_LOG", "info,tower_http=debug"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector),
            ("OTEL_SERVICE_NAME", "portcullis-under-test"),
            // Send batches at once rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let http = reqwest::Client::new();

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let email = unique_email();
    let refused = http
        .post(format!("{url}/api/v1/login"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&serde_json::json!({ "email": email, "password": "a secret guess" }))
        .send()
        .await
        .expect("POST /api/v1/login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let wanted = hex::decode(trace_id).expect("hex");
    let mut found = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let inbox = inbox.lock().expect("inbox");
        let request = inbox
            .iter()
            .find(|r| r.span.name == "request" && r.span.trace_id == wanted);
        if let Some(request) = request {
            let under = |name: &str| {
                inbox.iter().any(|r| {
                    r.span.name == name
                        && r.span.trace_id == wanted
                        && r.span.parent_span_id == request.span.span_id
                })
            };
            if under("db.query") && under("password.hash") {
                found = Some((request.service.clone(), request.span.clone()));
                break;
            }
        }
    }
    let Some((service, request)) = found else {
        let inbox = inbox.lock().expect("inbox");
        let names: Vec<_> = inbox.iter().map(|r| r.span.name.clone()).collect();
        panic!("no request span with its database and hash spans: received {names:?}");
    };
    assert_eq!(
        service, "portcullis-under-test",
        "OTEL_SERVICE_NAME is honoured"
    );
    assert_eq!(
        request.parent_span_id,
        hex::decode(caller_span).expect("hex"),
        "the request span is the caller's span's child"
    );
    let attributes = format!("{:?}", request.attributes);
    assert!(attributes.contains("/api/v1/login"), "{attributes}");
    // Nothing the person typed is in any span.
    let everything = format!(
        "{:?}",
        inbox
            .lock()
            .expect("inbox")
            .iter()
            .map(|r| &r.span)
            .collect::<Vec<_>>()
    );
    assert!(!everything.contains(&email), "no email in the spans");
    assert!(
        !everything.contains("a secret guess"),
        "no password in the spans"
    );

    server.kill().await.expect("stop the server");
    let logs = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    let with_trace = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["span"]["trace_id"].as_str() == Some(trace_id))
        .count();
    assert!(
        with_trace >= 1,
        "a JSON log line carries the trace id: {logs}"
    );
}
