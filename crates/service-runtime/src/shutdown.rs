//! Turning SIGINT (Ctrl-C) and SIGTERM (`docker stop`, Kubernetes) into one
//! cancellation every task of a service can wait on.

use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled when the process receives SIGINT or
/// SIGTERM. Must be called inside a Tokio runtime.
///
/// Returns `Err` when the signal handlers cannot be installed.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = terminate.recv();
        #[cfg(not(unix))]
        let terminate = std::future::pending::<Option<()>>();
        tokio::select! {
            result = ctrl_c => {
                if let Err(err) = result {
                    tracing::error!(error = %err, "cannot listen for SIGINT; shutting down");
                } else {
                    tracing::info!("SIGINT received, shutting down");
                }
            }
            _ = terminate => tracing::info!("SIGTERM received, shutting down"),
        }
        cancel.cancel();
    });
    Ok(token)
}
