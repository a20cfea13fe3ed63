//! The `portcullis` binary, run as an operator would, next to a running server.

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::{PASSWORD, TestApp, location, unique_email};

backend_tests!(
    a_node_given_another_secret_key_refuses_to_start,
    user_create_works_while_the_server_runs_and_that_user_can_sign_in,
    user_create_refuses_a_taken_email_and_a_weak_password,
);

fn portcullis(app: &TestApp) -> Command {
    app.command()
}

async fn create_user(app: &TestApp, args: &[&str], password: &str) -> std::process::Output {
    let mut child = portcullis(app)
        .args(["user", "create", "--password-stdin"])
        .args(args)
        .spawn()
        .expect("run portcullis");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .expect("write password");
    drop(stdin);
    child.wait_with_output().await.expect("portcullis finishes")
}

async fn user_create_works_while_the_server_runs_and_that_user_can_sign_in(app: TestApp) {
    let email = unique_email();
    let output = create_user(
        &app,
        &["--email", &email, "--name", "Ada Admin", "--admin"],
        PASSWORD,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(printed["email"], email.as_str());
    let id = printed["id"].as_str().expect("an id").to_string();

    let response = app.login(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");
    let account = app.page("/account").await;
    assert!(account.contains("Ada Admin") && account.contains("admin"));
    let user = app
        .store
        .find_user_by_id(&id)
        .await
        .expect("store")
        .expect("user");
    assert!(user.is_admin());
}

async fn user_create_refuses_a_taken_email_and_a_weak_password(app: TestApp) {
    let email = unique_email();
    assert!(
        create_user(&app, &["--email", &email], PASSWORD)
            .await
            .status
            .success()
    );

    let again = create_user(&app, &["--email", &email.to_uppercase()], PASSWORD).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let weak = create_user(&app, &["--email", &unique_email()], "short").await;
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10 characters"));
    assert_eq!(app.store.count_users().await.expect("count"), 1);
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, value) in [
        ("PORTCULLIS_PUBLIC_URL", "login.example.com"),
        ("PORTCULLIS_LISTEN", "everywhere"),
        ("PORTCULLIS_DATABASE_URL", "mysql://db/portcullis"),
        ("PORTCULLIS_SECRET_KEY", "too-short"),
        ("PORTCULLIS_SESSION_IDLE_TIMEOUT", "forever"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .env_clear()
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env(name, value)
            .arg("migrate")
            .output()
            .await
            .expect("run portcullis");
        assert!(!output.status.success(), "{name}={value} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let setting = name.trim_start_matches("PORTCULLIS_").to_lowercase();
        assert!(
            stderr.contains(name) || stderr.contains(&setting),
            "{name}: the message names the setting: {stderr}"
        );
    }
}

#[tokio::test]
async fn passkeys_asked_for_where_they_cannot_work_stop_start_up_saying_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("http://192.168.1.10:8080", None, "is an IP address"),
        ("http://login.example.com", None, "https://"),
        (
            "https://login.example.com",
            Some("other.example"),
            "parent domain",
        ),
    ];
    for (public_url, rp_id, why) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .env_clear()
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("PORTCULLIS_PUBLIC_URL", public_url)
            .env("PORTCULLIS_PASSKEYS", "on");
        if let Some(rp_id) = rp_id {
            command.env("PORTCULLIS_PASSKEY_RP_ID", rp_id);
        }
        let output = command
            .arg("migrate")
            .output()
            .await
            .expect("run portcullis");
        assert!(!output.status.success(), "{public_url} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(why) && stderr.contains("PORTCULLIS_PASSKEYS=off"),
            "{public_url}: {stderr}"
        );
    }
}

#[tokio::test]
async fn the_secret_key_is_generated_once_and_never_logged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .env_clear()
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("RUST_LOG", "debug")
            .arg("migrate")
            .output()
    };
    let first = run().await.expect("run portcullis");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let key = std::fs::read_to_string(dir.path().join("secret.key")).expect("key file written");
    let logs = String::from_utf8_lossy(&first.stderr);
    assert!(logs.contains("generated a new secret key"));
    assert!(!logs.contains(key.trim()), "the key itself is never logged");
    assert!(run().await.expect("run again").status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secret.key")).expect("key"),
        key,
        "kept"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secret.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner can read the key");
    }
    assert!(
        dir.path().join("portcullis.db").exists(),
        "the database file is created on first start"
    );
}

/// A node with a key other than the one the database was sealed with would fail on every sealed
/// secret (or seal new ones the other nodes cannot open): it refuses to start, and says why. On
/// Postgres a node given no key refuses too, rather than generate one of its own.
async fn a_node_given_another_secret_key_refuses_to_start(app: TestApp) {
    let serve = |key: Option<String>| {
        let mut command = app.command();
        command
            .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
            .env_remove("PORTCULLIS_SECRET_KEY")
            .arg("serve");
        if let Some(key) = key {
            command.env("PORTCULLIS_SECRET_KEY", key);
        }
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
                .await
                .expect("the node stops by itself")
                .expect("run portcullis")
        }
    };
    let refused = serve(Some(crate::helpers::random_secret_key())).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("is not the key this database's secrets were sealed with"),
        "{stderr}"
    );
    if app.database_url.is_some() {
        let refused = serve(None).await;
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("on Postgres every node must be given the same secret key"),
            "{stderr}"
        );
    }
    // The server with the right key still works.
    assert_eq!(app.get("/ready").await.status(), StatusCode::OK);
}

/// Without SMTP, a mail's body (one-time links and codes) goes to its `.eml` file only; the log
/// names the recipient, the subject and the file.
#[tokio::test]
async fn the_file_mailer_logs_who_and_what_but_never_the_body() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, url) =
        crate::helpers::serve_binary(dir.path(), &[("RUST_LOG", "debug")]).await;
    let http = reqwest::Client::new();
    let email = unique_email();
    let signed_up = http
        .post(format!("{url}/api/v1/signup"))
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("POST signup");
    assert_eq!(signed_up.status(), StatusCode::CREATED);
    let mail_dir = dir.path().join("mail");
    let mut mail = String::new();
    for _ in 0..100 {
        if let Some(file) = std::fs::read_dir(&mail_dir)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
        {
            mail = std::fs::read_to_string(file.path()).expect("read the mail");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(mail.contains("token="), "the file has the link: {mail}");
    server.kill().await.expect("stop the server");
    let logs = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(logs.contains("mail written to a file"), "{logs}");
    assert!(logs.contains(&email), "the log names the recipient");
    assert!(
        !logs.contains("token="),
        "no one-time link in the log: {logs}"
    );
}

/// `PORTCULLIS_LOG_FORMAT=json`: every log line is one JSON object; a wrong value is refused.
#[tokio::test]
async fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .env_clear()
            .env("PORTCULLIS_DATA_DIR", dir.path())
            .env("PORTCULLIS_LOG_FORMAT", format)
            .env("RUST_LOG", "info")
            .arg("migrate")
            .output()
    };
    let out = run("json").await.expect("run portcullis");
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    // Every line but the command's own report is a log event in JSON.
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|line| !line.starts_with("migrations applied"))
        .map(|line| serde_json::from_str(line).expect("a JSON object"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["message"] == "generated a new secret key; back it up with the database, it encrypts secrets at rest"),
        "{logs}"
    );
    let bad = run("yaml").await.expect("run portcullis");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("PORTCULLIS_LOG_FORMAT must be text or json")
    );
}
