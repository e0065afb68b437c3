//! A TCP forwarder on 127.0.0.1 that the test can cut and restore, to make a database
//! unreachable the way a network failure or a stopped server does: open connections break
//! and new ones are refused.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A forwarder from a local port to `target`.
pub struct TcpLink {
    pub port: u16,
    target: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TcpLink {
    /// Starts forwarding from a free port of 127.0.0.1 to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the TCP link to 127.0.0.1")?;
        let link = Self {
            port: listener.local_addr()?.port(),
            target,
            accept: Mutex::new(None),
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        link.serve(listener);
        Ok(link)
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let connections = Arc::clone(&self.connections);

        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(connection);
            }
        });

        *self.accept.lock().unwrap() = Some(task);
    }

    fn stop(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Breaks every open connection and refuses new ones.
    pub async fn cut(&self) {
        let accept = self.accept.lock().unwrap().take();
        if let Some(task) = accept {
            task.abort();
            // Wait until the listener is dropped, so that the port refuses connections.
            let _ = task.await;
        }
        self.stop();
    }

    /// Accepts and forwards connections again on the same port.
    pub async fn restore(&self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("cannot bind the TCP link to port {} again", self.port))?;
        self.serve(listener);
        Ok(())
    }
}
