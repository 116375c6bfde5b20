//! Waiting for something to come true, in one place: check, pause a little, check again, and
//! give up with a message naming what was awaited once the time allowed has passed.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The pause between two checks.
const STEP: Duration = Duration::from_millis(10);

/// Check `ready` until it gives a value, for at most `within`; panics naming `what` after that.
pub async fn until<T>(
    what: impl Display,
    within: Duration,
    mut ready: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = ready().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(STEP).await;
    }
}

/// [`until`] for code that is not async: the thread sleeps between checks.
pub fn until_blocking<T>(
    what: impl Display,
    within: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(STEP);
    }
}
