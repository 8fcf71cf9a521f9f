//! `<service> healthcheck`: the container HEALTHCHECK, without curl in the
//! image. Asks the running service's own `/healthz` over loopback; the
//! subcommand declares the service's listen address, all it needs.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Exits 0 when `GET /healthz` on `listen_addr` (loopback when it is the
/// unspecified address) answers 200 within 3 s, 1 otherwise.
pub async fn healthcheck(listen_addr: SocketAddr) -> ExitCode {
    let target = if listen_addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, listen_addr.port()))
    } else {
        listen_addr
    };
    match tokio::time::timeout(Duration::from_secs(3), probe(target)).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("healthcheck: {target}/healthz did not answer 200");
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("healthcheck: {target}: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("healthcheck: {target}: no answer within 3 s");
            ExitCode::FAILURE
        }
    }
}

async fn probe(target: SocketAddr) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(target).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response.starts_with(b"HTTP/1.1 200"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CancellationToken, health_routes, serve};

    #[tokio::test]
    async fn a_serving_service_is_healthy_and_a_missing_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, health_routes(), shutdown.clone()));
        // The unspecified address is probed on loopback, as in a container.
        let unspecified = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert_eq!(healthcheck(unspecified).await, ExitCode::SUCCESS);
        shutdown.cancel();
        server.await.unwrap().unwrap();
        assert_eq!(healthcheck(addr).await, ExitCode::FAILURE);
    }
}
