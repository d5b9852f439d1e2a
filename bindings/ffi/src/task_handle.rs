//! Subscriptions: a task that sends the current value first, then every change, to a
//! listener, and the handle that ends it. Cancelling the [`TaskHandle`], or dropping it (the
//! foreign object is closed or garbage-collected), stops the task. After the pattern of
//! matrix-sdk-ffi's `task_handle.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::platform::call_foreign;

/// Keeps a subscription alive; `cancel()` or dropping it ends the subscription.
#[derive(Debug, uniffi::Object)]
pub struct TaskHandle {
    handle: JoinHandle<()>,
    cancelled: Arc<AtomicBool>,
}

#[uniffi::export]
impl TaskHandle {
    /// Ends the subscription: no listener call starts after this returns (one already
    /// running on another thread finishes).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.handle.abort();
    }

    /// Whether the subscription has ended (cancelled, or its source is gone).
    pub fn is_finished(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst) || self.handle.is_finished()
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Spawns the task of a subscription: `deliver` gets each of `current` (the values at
/// subscription time), then everything `changes` receives, until the handle is cancelled or
/// the sender side is gone. A listener that throws is logged and keeps its subscription.
pub(crate) fn subscribe<T: Send + 'static>(
    rt: &Handle,
    what: &'static str,
    current: Vec<T>,
    mut changes: mpsc::UnboundedReceiver<T>,
    deliver: impl Fn(T) + Send + Sync + 'static,
) -> TaskHandle {
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    let handle = rt.spawn(async move {
        let send = |value: T| {
            if flag.load(Ordering::SeqCst) {
                return false;
            }
            if let Err(error) = call_foreign(what, || {
                deliver(value);
                Ok(())
            }) {
                tracing::warn!(%error, "listener failed");
            }
            true
        };
        for value in current {
            if !send(value) {
                return;
            }
        }
        while let Some(value) = changes.recv().await {
            if !send(value) {
                return;
            }
        }
    });
    TaskHandle { handle, cancelled }
}
