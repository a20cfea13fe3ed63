//! A small real SMTP server for tests: it speaks the protocol over TCP, accepts every message
//! and keeps it so a test can read it back. A held sink answers no message until released, as a
//! mail server that is slow or stuck.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<String>>>,
    /// One permit per message that may be answered.
    gate: Arc<Semaphore>,
    /// Messages received and not yet answered.
    held: Arc<AtomicUsize>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_with(Semaphore::MAX_PERMITS).await
    }

    /// A sink that holds every message (no answer to its data) until `release`.
    pub async fn start_held() -> Self {
        Self::start_with(0).await
    }

    /// Lets every held message and all later ones through.
    pub fn release(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Messages received whose answer is held back.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    async fn start_with(permits: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP sink");
        let port = listener.local_addr().expect("addr").port();
        let sink = Self {
            port,
            messages: Arc::default(),
            gate: Arc::new(Semaphore::new(permits)),
            held: Arc::default(),
        };
        let messages = Arc::clone(&sink.messages);
        let gate = Arc::clone(&sink.gate);
        let held = Arc::clone(&sink.held);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let messages = Arc::clone(&messages);
                let gate = Arc::clone(&gate);
                let held = Arc::clone(&held);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink.test ESMTP ready\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink.test\r\n",
                            "DATA" => {
                                let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                                let mut message = String::new();
                                while let Ok(Some(data)) = lines.next_line().await {
                                    if data == "." {
                                        break;
                                    }
                                    // RFC 5321 §4.5.2: a leading dot was doubled by the client.
                                    let data = data
                                        .strip_prefix('.')
                                        .filter(|_| data.starts_with(".."))
                                        .unwrap_or(&data);
                                    message.push_str(data);
                                    message.push_str("\r\n");
                                }
                                held.fetch_add(1, Ordering::SeqCst);
                                if let Ok(permit) = gate.acquire().await {
                                    permit.forget();
                                }
                                held.fetch_sub(1, Ordering::SeqCst);
                                if let Ok(mut all) = messages.lock() {
                                    all.push(message);
                                }
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
