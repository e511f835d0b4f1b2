//! systemd integration: `READY=1` once listening, `STOPPING=1` when a drain starts, and
//! `WATCHDOG=1` from a task the service owns, so a wedged runtime stops the pings and systemd
//! restarts us. Every call is a no-op outside systemd (no `NOTIFY_SOCKET`).

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;

pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready]) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
}

pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// The watchdog pinger, if systemd asked for one (`WatchdogSec=`): a loop, for the service's
/// task set, that pings at half the interval from the async runtime itself, so if the runtime
/// stops making progress, the pings stop.
pub fn watchdog() -> Option<impl Future<Output = ()> + Send + 'static> {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2);
    Some(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
        }
    })
}
