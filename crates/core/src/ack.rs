//! Acknowledgements: how a source learns that a batch it produced has been
//! written by every sink it reached.
//!
//! A batch carries a [`DeliveryToken`]. Fan-out clones the token; each holder
//! records what became of its copy and drops it. When the last holder is gone,
//! the source's [`DeliveryReceipt`] resolves to the combined outcome: failed
//! if any copy failed, otherwise delivered. A token dropped without a record
//! (a lost batch, a panicking task) counts as failed, so nothing unconfirmed
//! ever moves a checkpoint.
//!
//! A source may also abandon a batch it will send again (it rewound over
//! lines a sink failed to write): components that have not handled the
//! batch yet let it go instead of writing it twice.

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    task::{Context, Poll},
};

use tokio::sync::oneshot;

/// What became of a batch, or of one copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Delivery {
    /// Written durably (fsynced) or accepted by the remote end.
    Delivered = 0,
    /// Discarded on purpose (filtered, sampled, deduplicated): nothing to wait for.
    Dropped = 1,
    /// Not written; the source must not advance past it.
    Failed = 2,
}

impl Delivery {
    fn from_code(code: u8) -> Self {
        match code {
            0 => Delivery::Delivered,
            1 => Delivery::Dropped,
            _ => Delivery::Failed,
        }
    }
}

/// Nothing recorded yet.
const UNRECORDED: u8 = u8::MAX;

struct Shared {
    /// The worst outcome recorded so far, or [`UNRECORDED`].
    worst: AtomicU8,
    notify: Mutex<Option<oneshot::Sender<Delivery>>>,
    /// The source will send these events again.
    abandoned: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let outcome = match *self.worst.get_mut() {
            UNRECORDED => Delivery::Failed,
            code => Delivery::from_code(code),
        };
        let sender = self.notify.get_mut().map(Option::take).unwrap_or_default();
        if let Some(sender) = sender {
            // The source may have stopped waiting; that is not an error here.
            let _ = sender.send(outcome);
        }
    }
}

/// Carried with a batch; cloned for each copy of it.
#[derive(Clone)]
pub struct DeliveryToken {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DeliveryToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryToken")
            .field("holders", &Arc::strong_count(&self.shared))
            .finish()
    }
}

/// Kept by the source: resolves when every copy of the batch is accounted for.
#[derive(Debug)]
pub struct DeliveryReceipt {
    outcome: oneshot::Receiver<Delivery>,
    shared: Weak<Shared>,
}

impl DeliveryToken {
    /// A token for a new batch, and the receipt its source waits on.
    pub fn new() -> (Self, DeliveryReceipt) {
        let (sender, outcome) = oneshot::channel();
        let shared = Arc::new(Shared {
            worst: AtomicU8::new(UNRECORDED),
            notify: Mutex::new(Some(sender)),
            abandoned: AtomicBool::new(false),
        });
        let receipt = DeliveryReceipt {
            outcome,
            shared: Arc::downgrade(&shared),
        };
        (Self { shared }, receipt)
    }

    /// Records what became of this holder's copy; the worst record wins.
    /// `Dropped` never hides a `Delivered` of another copy, and vice versa:
    /// both let the source move on.
    pub fn record(&self, outcome: Delivery) {
        let code = match outcome {
            // For the source, a discarded copy is as final as a written one.
            Delivery::Dropped => Delivery::Delivered as u8,
            other => other as u8,
        };
        let _ = self
            .shared
            .worst
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current == UNRECORDED || code > current).then_some(code)
            });
    }

    /// Whether the source has abandoned the batch (it sends it again).
    pub fn is_abandoned(&self) -> bool {
        self.shared.abandoned.load(Ordering::Acquire)
    }

    /// Records the outcome and gives up this holder's share.
    pub fn finish(self, outcome: Delivery) {
        self.record(outcome);
    }
}

impl DeliveryReceipt {
    /// Tells the holders that the source sends these events again, so those
    /// that have not handled the batch yet let it go.
    pub fn abandon(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.abandoned.store(true, Ordering::Release);
        }
    }

    /// Waits until every copy is accounted for: `Delivered` or `Failed`.
    pub async fn outcome(self) -> Delivery {
        self.await
    }
}

/// Awaiting a receipt in place (`&mut receipt`) keeps it at hand, so a
/// source can still abandon it while it waits on another.
impl Future for DeliveryReceipt {
    type Output = Delivery;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Delivery> {
        Pin::new(&mut self.outcome)
            .poll(cx)
            .map(|outcome| outcome.unwrap_or(Delivery::Failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_delivering_resolves_delivered() {
        let (token, receipt) = DeliveryToken::new();
        token.finish(Delivery::Delivered);
        assert_eq!(receipt.outcome().await, Delivery::Delivered);
    }

    #[tokio::test]
    async fn the_receipt_waits_for_every_copy_and_a_failure_wins() {
        let (token, receipt) = DeliveryToken::new();
        let copy = token.clone();
        let mut receipt = Box::pin(receipt.outcome());
        token.finish(Delivery::Delivered);
        assert!(
            futures_poll_once(&mut receipt).await.is_none(),
            "one copy is still out"
        );
        copy.finish(Delivery::Failed);
        assert_eq!(receipt.await, Delivery::Failed);
    }

    #[tokio::test]
    async fn a_dropped_copy_does_not_hold_back_a_delivered_one() {
        let (token, receipt) = DeliveryToken::new();
        let copy = token.clone();
        copy.finish(Delivery::Dropped);
        token.finish(Delivery::Delivered);
        assert_eq!(receipt.outcome().await, Delivery::Delivered);
    }

    #[tokio::test]
    async fn a_token_lost_without_a_record_counts_as_failed() {
        let (token, receipt) = DeliveryToken::new();
        drop(token);
        assert_eq!(receipt.outcome().await, Delivery::Failed);
    }

    #[tokio::test]
    async fn a_token_moved_across_tasks_resolves_when_the_task_ends() {
        let (token, receipt) = DeliveryToken::new();
        let copies: Vec<_> = (0..8).map(|_| token.clone()).collect();
        drop(token);
        let tasks: Vec<_> = copies
            .into_iter()
            .map(|copy| tokio::spawn(async move { copy.finish(Delivery::Delivered) }))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(receipt.outcome().await, Delivery::Delivered);
    }

    #[tokio::test]
    async fn an_abandoned_batch_is_seen_by_its_holders() {
        let (token, receipt) = DeliveryToken::new();
        assert!(!token.is_abandoned());
        receipt.abandon();
        assert!(token.is_abandoned());
        token.finish(Delivery::Dropped);
    }

    /// Polls a future once: `Some` when it is ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(
        future: &mut F,
    ) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
                std::task::Poll::Ready(value) => Some(value),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
