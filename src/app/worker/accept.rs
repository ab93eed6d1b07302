//! The accept loop: one task per delivery, until shutdown, the source's end, or idle time;
//! and the drain that waits for the tasks on shutdown.

use super::delivery::Incoming;
use super::handle::{handle, Handling};
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Jobs still running when the drain timeout expired (0 on a clean drain).
    pub abandoned: usize,
}

/// Why the accept loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was requested.
    Shutdown,
    /// The source ended (the consumer was cancelled or the connection was lost).
    SourceEnded,
    /// The source carried jobs and has had none in flight for the idle-wipe time: time to
    /// replace the connection so its buffers are freed.
    Idle,
}

/// Takes deliveries from `source` and starts a task for each on `tracker`, until the source
/// ends, `shutdown` fires, or — with `idle_wipe` set — the source has carried at least one job
/// and no job has been in flight for that long.
pub async fn accept<S>(
    source: &mut S,
    handling: &Arc<Handling>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    idle_wipe: Option<Duration>,
) -> Stopped
where
    S: Stream<Item = Incoming> + Unpin,
{
    let mut carried_jobs = false;
    let mut idle_since = Instant::now();
    let tick =
        idle_wipe.map(|d| (d / 4).clamp(Duration::from_millis(10), Duration::from_millis(250)));
    loop {
        let idle_check = async {
            match tick {
                Some(t) if carried_jobs => tokio::time::sleep(t).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Stopped::Shutdown,
            next = source.next() => match next {
                Some(incoming) => {
                    carried_jobs = true;
                    // Idle time starts over with every job, not only while one is in flight.
                    idle_since = Instant::now();
                    tracker.spawn(handle(incoming, handling.clone()));
                }
                None => return Stopped::SourceEnded,
            },
            () = idle_check => {
                if !tracker.is_empty() {
                    idle_since = Instant::now();
                } else if idle_wipe.is_some_and(|d| idle_since.elapsed() >= d) {
                    return Stopped::Idle;
                }
            }
        }
    }
}

/// Waits up to `timeout` for the tracked jobs to finish.
pub async fn drain(tracker: &TaskTracker, timeout: Duration) -> Drained {
    let in_flight = tracker.len();
    if in_flight > 0 {
        info!(in_flight, "draining in-flight jobs");
    }
    match tokio::time::timeout(timeout, tracker.wait()).await {
        Ok(()) => Drained { abandoned: 0 },
        Err(_) => Drained {
            abandoned: tracker.len(),
        },
    }
}
