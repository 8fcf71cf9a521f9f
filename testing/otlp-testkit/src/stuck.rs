//! A peer that is there and says nothing.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// An address that accepts connections and never answers: a collector, or a
/// Pyroscope, that hangs; the worst case for an exporter, which waits for a
/// reply rather than failing fast. Dropping it closes the connections.
#[derive(Debug)]
pub struct StuckServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for StuckServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StuckServer {
    /// Starts accepting.
    ///
    /// Returns `Err` when no port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        Ok(Self { addr, task })
    }

    /// `http://` and the address.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
