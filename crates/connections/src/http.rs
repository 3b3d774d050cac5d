//! Serving a router over HTTP/1.1 under a [`ConnectionTable`]: the accept
//! loop, one connection task for each client, a request body read timeout,
//! and graceful shutdown.
//!
//! A manager keeps a connection open, with a sync waiting on it, for each of
//! thousands of workers, so what one connection costs counts many times
//! over. The nodes speak HTTP/1.1 only, and hyper's HTTP/1 connection alone
//! is less than half the size of the protocol-detecting one `axum::serve`
//! runs (632 bytes against 1,528, before the task around it).
//!
//! hyper's own header read timeout is left off: it also runs while a
//! kept-alive connection waits for its next request, so it would close
//! those after the header timeout rather than the idle timeout. The
//! connection's [`TimedStream`](super::TimedStream) keeps both instead.

use std::{
    convert::Infallible,
    io,
    pin::{Pin, pin},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{Router, body::Body, response::Response};
use hyper::{
    Request,
    body::{Bytes, Frame, Incoming, SizeHint},
    server::conn::http1,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep, sleep_until},
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{Busy, Connection, ConnectionTable, Slot, TimedStream};

/// How long a connection closed to make room may take to finish sending
/// its last answer.
const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` under the limits of `table` until
/// `shutdown` is cancelled, then stops accepting and lets requests in
/// flight finish. A request body must arrive within `body_read_timeout` of
/// its head.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    table: ConnectionTable,
    body_read_timeout: Duration,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // The routes are made ready once here, not for each connection.
    let router = router.with_state(());
    let http = http1::Builder::new();
    while let Some((stream, _)) = table.accept(&listener, &shutdown).await {
        let Some(connection) = table.admit().await else {
            refuse(&stream);
            continue;
        };
        // The first request's head is due from now.
        connection.reading();
        let service = Tracked {
            router: router.clone(),
            connection: connection.slot.clone(),
            body_read_timeout,
        };
        let served = http.serve_connection(TokioIo::new(connection.stream(stream)), service);
        tokio::spawn(run(served, connection, shutdown.clone()));
    }
    drop(listener);
    table.closed().await;
    Ok(())
}

/// Answers a connection that the table refused, without reading anything
/// and without waiting: 503, and the connection is closed. A word from the
/// server tells a client why, where a bare close would look like a fault.
fn refuse(stream: &TcpStream) {
    let body = "Every connection of this server is in use; try again in a moment.\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // A full send buffer on a new connection only means no answer.
    let _ = stream.try_write(answer.as_bytes());
}

/// The HTTP/1.1 side of one connection.
type Served = http1::Connection<TokioIo<TimedStream<TcpStream>>, Tracked>;

/// Runs one connection until it ends, the table closes it to make room, or
/// the server shuts down.
async fn run(served: Served, connection: Connection, shutdown: CancellationToken) {
    let mut served = pin!(served);
    let evicted = tokio::select! {
        // A client that goes away mid-request is its own business.
        _ = served.as_mut() => return,
        () = connection.evicted() => true,
        () = shutdown.cancelled() => false,
    };
    // Half a request head has nothing to finish.
    if evicted && connection.is_reading() {
        return;
    }
    served.as_mut().graceful_shutdown();
    if evicted && !connection.is_busy() {
        let _ = tokio::time::timeout(EVICTION_GRACE, served).await;
    } else {
        let _ = served.await;
    }
}

/// The router, as the service of one connection: each request makes the
/// connection busy until its answer is sent, and its body is under the
/// body read timeout.
#[derive(Debug, Clone)]
struct Tracked {
    router: Router,
    connection: std::sync::Arc<Slot>,
    body_read_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<GuardedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.connection.busy();
        let limit = self.body_read_timeout;
        let request = request.map(|body| TimedBody {
            body,
            limit,
            deadline: Instant::now() + limit,
            timer: None,
        });
        let answer = self.router.clone().oneshot(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| GuardedBody {
                body,
                busy: Some(busy),
            }))
        })
    }
}

/// The error of a request body that has not arrived within the body read
/// timeout; see [`body_timeout_in`].
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub struct BodyTimedOut(Duration);

/// The [`BodyTimedOut`] that `err` is or wraps, if any: how a handler
/// tells that a body failed to arrive in time.
pub fn body_timeout_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimedOut> {
    std::iter::successors(Some(err), |err| err.source()).find_map(|err| err.downcast_ref())
}

/// A request body that fails with [`BodyTimedOut`] once its deadline has
/// passed; its timer is made only if a read has to wait.
struct TimedBody {
    body: Incoming,
    limit: Duration,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An answer's body, which keeps its connection busy until it has all
/// been sent.
struct GuardedBody {
    body: Body,
    busy: Option<Busy>,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() {
            this.busy = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
