//! The operator's side of the metrics: a real Prometheus (Debian's package) scrapes a server and
//! answers a query with its counter; `promtool` accepts the live exposition and the alert rules
//! (and their unit tests); the dashboard and the rules name only metrics the server exports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::{TestApp, metric, signed_up};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// The tool, or `None` outside CI when it is not installed (CI must have it).
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("CI needs {name} for the metrics tests: apt-get install prometheus");
    }
    found
}

/// Every `portcullis_…` metric name in `text`, with histogram suffixes taken off.
fn metric_names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("portcullis_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_count", "_sum"] {
            if let Some(base) = name.strip_suffix(suffix)
                && base.ends_with("_seconds")
            {
                name = base;
            }
        }
        names.push(name.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_use_only_exported_metrics() {
    let exported: Vec<&str> = portcullis::ops::metrics::names().collect();
    let dashboard = std::fs::read_to_string(deploy("grafana/portcullis.json")).expect("dashboard");
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut used = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(metric_names_in(target["expr"].as_str().expect("expr")));
        }
    }
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yaml")).expect("rules");
    used.extend(metric_names_in(&rules));
    for name in &used {
        assert!(exported.contains(&name.as_str()), "{name} is not exported");
    }
    for wanted in [
        "portcullis_sign_ins_total",
        "portcullis_throttle_refusals_total",
        "portcullis_refresh_token_reuse_detected_total",
        "portcullis_http_requests_total",
        "portcullis_http_request_duration_seconds",
        "portcullis_database_errors_total",
    ] {
        assert!(used.iter().any(|n| n == wanted), "{wanted} is watched");
    }
}

#[tokio::test]
async fn promtool_checks_the_rules_and_their_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    for args in [
        vec!["check", "rules", "alerts.yaml"],
        vec!["test", "rules", "alerts_test.yaml"],
        vec!["check", "config", "prometheus.yaml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(deploy("prometheus"))
            .output()
            .await
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A server with some of everything: a sign-up (hash, mail), a failed and a throttled sign-in.
async fn busy_server() -> TestApp {
    let mut app = TestApp::spawn_sqlite().await;
    app.restart_with(|raw| raw.login_max_failures_per_account = 1)
        .await;
    let email = signed_up(&app).await;
    for _ in 0..2 {
        let response = app
            .fresh_client()
            .post(app.at("/api/v1/login"))
            .json(&json!({ "email": email, "password": "wrong" }))
            .send()
            .await
            .expect("POST /api/v1/login");
        assert!(response.status().is_client_error());
    }
    app
}

#[tokio::test]
async fn promtool_accepts_the_live_metrics() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let app = busy_server().await;
    let text = app.metrics().await;
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = check.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = check.wait_with_output().await.expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_failure_counter() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let app = busy_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        deploy("prometheus/alerts.yaml"),
        dir.path().join("alerts.yaml"),
    )
    .expect("copy the rules");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yaml\n\
         scrape_configs:\n  - job_name: portcullis\n    static_configs:\n      - targets: [\"{}\"]\n",
        app.metrics_addr()
    );
    std::fs::write(dir.path().join("prometheus.yaml"), config).expect("write the config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let _server = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yaml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");

    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        url::form_urlencoded::byte_serialize(
            br#"sum(portcullis_sign_ins_total{job="portcullis",result="failure"})"#
        )
        .collect::<String>()
    );
    let http = reqwest::Client::new();
    let mut seen = None;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(response) = http.get(&query).send().await else {
            continue;
        };
        if response.status() != StatusCode::OK {
            continue;
        }
        let body: Value = response.json().await.expect("query JSON");
        if let Some(value) = body["data"]["result"][0]["value"][1].as_str() {
            seen = Some(value.to_string());
            break;
        }
    }
    // The server's own count, read the same way Prometheus read it.
    let expected = metric(
        &app.metrics().await,
        "portcullis_sign_ins_total",
        &[("method", "password"), ("result", "failure")],
    );
    assert_eq!(
        expected, 1.0,
        "one failed sign-in (the second was throttled)"
    );
    assert_eq!(
        seen.as_deref(),
        Some("1"),
        "Prometheus scraped the failure counter"
    );

    // It loaded the alert rules too.
    let rules: Value = http
        .get(format!("http://127.0.0.1:{port}/api/v1/rules"))
        .send()
        .await
        .expect("rules")
        .json()
        .await
        .expect("rules JSON");
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(loaded >= 9, "{loaded} rules loaded: {rules}");
}
