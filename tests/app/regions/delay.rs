//! A TCP proxy that delays every byte by a one-way latency in each direction, in order, as a
//! link between regions would (this kernel has no `netem`). It can be cut, as a lost region is:
//! connections stay open and nothing arrives (no refusal, no reset). And it can be pointed at
//! another server, as a DNS name or a pooler moves to a promoted replica: the connections of
//! before are reset then.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub struct DelayProxy {
    pub port: u16,
    link: Arc<Link>,
    task: JoinHandle<()>,
}

struct Link {
    upstream: AtomicU16,
    cut: AtomicBool,
    one_way: Duration,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.link.reset();
    }
}

impl DelayProxy {
    /// Forwards connections on a new port to `127.0.0.1:upstream`, `one_way` late each way.
    pub async fn start(upstream: u16, one_way: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let link = Arc::new(Link {
            upstream: AtomicU16::new(upstream),
            cut: AtomicBool::new(false),
            one_way,
            connections: Mutex::new(Vec::new()),
        });
        let accepting = link.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let connection = tokio::spawn(accepting.clone().carry(client));
                let mut connections = accepting.connections.lock().expect("lock");
                connections.retain(|c| !c.is_finished());
                connections.push(connection);
            }
        });
        Self { port, link, task }
    }

    /// Nothing passes any more, in either direction; connections stay open.
    pub fn cut(&self) {
        self.link.cut.store(true, Ordering::Release);
    }

    /// Resets every connection and sends new ones to `127.0.0.1:upstream`, uncut.
    pub fn point_at(&self, upstream: u16) {
        self.link.upstream.store(upstream, Ordering::Release);
        self.link.reset();
        self.link.cut.store(false, Ordering::Release);
    }
}

impl Link {
    fn reset(&self) {
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    async fn carry(self: Arc<Self>, client: TcpStream) {
        if self.cut.load(Ordering::Acquire) {
            // Held open, unanswered, until the link is reset.
            return std::future::pending().await;
        }
        // Refused upstream: the client sees its connection closed.
        let Ok(server) =
            TcpStream::connect(("127.0.0.1", self.upstream.load(Ordering::Acquire))).await
        else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::join!(
            self.pump(client_read, server_write),
            self.pump(server_read, client_write),
        );
    }

    /// Copies `from` to `to`, each chunk `one_way` after it arrived, keeping the order; while
    /// the link is cut, chunks are lost.
    async fn pump(&self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
        let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let read = async move {
            let mut buffer = vec![0; 64 * 1024];
            loop {
                match from.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let at = Instant::now() + self.one_way;
                        if chunks.send((at, buffer[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping `chunks` ends the writer once it has sent what was read.
        };
        let write = async move {
            while let Some((at, chunk)) = due.recv().await {
                tokio::time::sleep_until(at).await;
                if self.cut.load(Ordering::Acquire) {
                    continue;
                }
                if to.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            if !self.cut.load(Ordering::Acquire) {
                let _ = to.shutdown().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::join!(read, write);
    }
}
