//! Serving a router: the accept loop, one HTTP/1.1 connection task for each
//! client, and graceful shutdown.
//!
//! A manager keeps a connection open, with a sync waiting on it, for each of
//! thousands of workers, so what one connection costs counts many times
//! over. The nodes speak HTTP/1.1 only, and hyper's HTTP/1 connection alone
//! is less than half the size of the protocol-detecting one `axum::serve`
//! runs (632 bytes against 1,528, before the task around it).

use std::{io, time::Duration};

use axum::{Router, body::Body, extract::Request};
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown, service::TowerToHyperService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::error;

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting and lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // The routes are made ready once here, not for each connection.
    let service = TowerToHyperService::new(
        router
            .with_state(())
            .map_request(|request: Request<Incoming>| request.map(Body::new)),
    );
    let http = hyper::server::conn::http1::Builder::new();
    let connections = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    pause_after(&err).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// After an accept error: nothing for a connection the client gave up on;
/// otherwise (out of file descriptors, say) a logged pause, so the loop does
/// not spin while the cause lasts.
async fn pause_after(err: &io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    error!(error = %err, "Cannot accept a connection; trying again in a second.");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
