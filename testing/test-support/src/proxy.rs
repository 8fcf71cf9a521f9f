//! A TCP proxy in front of a real server, to cut and restore the connection
//! the way a network outage or a restarting server would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards connections on [`TcpProxy::addr`] to a target until cut.
///
/// While cut, open connections are closed and new ones are accepted and
/// closed at once, so clients see resets rather than a hang.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy to `target` on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (up, _) = watch::channel(true);
        let up = Arc::new(up);
        let state = up.clone();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            accepted,
            task,
        }
    }

    /// Starts a proxy to the host and port of `url` (`scheme://user@host:port/...`).
    ///
    /// # Panics
    /// When the URL has no host and port.
    pub async fn for_url(url: &str) -> Self {
        let authority = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(url)
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let host_port = host_port.replace("localhost", "127.0.0.1");
        let target = tokio::net::lookup_host(&host_port)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("no host:port in {host_port:?}"));
        Self::start(target).await
    }

    /// Where clients should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` rewritten to go through the proxy (its host and port replaced).
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (userinfo, after_at) = match rest.split_once('@') {
            Some((userinfo, after)) => (Some(userinfo), after),
            None => (None, rest),
        };
        let path_start = after_at.find(['/', '?']).unwrap_or(after_at.len());
        let mut result = format!("{scheme}://");
        if let Some(userinfo) = userinfo {
            result.push_str(userinfo);
            result.push('@');
        }
        result.push_str(&self.addr.to_string());
        result.push_str(&after_at[path_start..]);
        result
    }

    /// How many connections clients have opened so far, cut or not: how
    /// often a client tried to (re)connect.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_rewritten_to_the_proxy_keeping_credentials_and_path() {
        let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
        let port = proxy.addr().port();
        assert_eq!(
            proxy.url("postgres://u:p@localhost:5432/db?sslmode=disable"),
            format!("postgres://u:p@127.0.0.1:{port}/db?sslmode=disable")
        );
        assert_eq!(
            proxy.url("redis://127.0.0.1:6379"),
            format!("redis://127.0.0.1:{port}")
        );
    }

    #[tokio::test]
    async fn a_cut_proxy_closes_connections_and_a_restored_one_forwards_again() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0; 64];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = TcpProxy::start(target).await;
        let roundtrip = || async {
            let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut buf = [0; 4];
            stream.read_exact(&mut buf).await.map(|_| buf)
        };
        assert_eq!(&roundtrip().await.unwrap(), b"ping");
        proxy.cut();
        assert!(roundtrip().await.is_err());
        proxy.restore();
        assert_eq!(&roundtrip().await.unwrap(), b"ping");
    }
}
