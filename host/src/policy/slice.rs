//! Time slices for guest code: how a long decision shares its worker thread.
//!
//! Wasmtime stops a decision's guest code every [`engine::FUEL_STEP`](super::engine::FUEL_STEP)
//! units of fuel, wakes the decision's task and returns `Pending`. Fuel counts instructions, not
//! time, and a step's duration varies several-fold with the code and the machine, so a step is
//! not what other requests should wait for. [`Sliced`] turns the steps into slices of wall-clock
//! time: while the slice (or the decision's deadline) lasts it polls the guest again at once,
//! and passes the yield on to the task's scheduler only when the slice is spent. Every decision
//! gets a full first slice (no clock tick can cut it short), no thread ticks, and a wait for
//! anything else (a host call waiting on I/O) is passed on as it is, its wake-up forwarded when
//! it comes. A decision that ends within its first step, as every decision of a Rust policy
//! does, is polled once with the task's own waker and costs nothing more. This module touches
//! nothing but the future it wraps and the clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

/// How long guest code runs before its decision yields to the other tasks of its worker thread.
pub const SLICE: Duration = Duration::from_millis(1);

/// `fut`, run in slices of `slice` wall-clock time (plus at most one fuel step), the last one
/// ending at `stop_at`.
pub struct Sliced<F> {
    inner: F,
    slice: Duration,
    stop_at: Instant,
    /// Made when the guest first stops short of its end: a decision that ends within its first
    /// step (every decision of a Rust policy) allocates nothing here.
    held: Option<(Arc<Deferred>, Waker)>,
}

impl<F: Future + Unpin> Sliced<F> {
    pub fn new(inner: F, slice: Duration, stop_at: Instant) -> Self {
        Self {
            inner,
            slice,
            stop_at,
            held: None,
        }
    }
}

impl<F: Future + Unpin> Future for Sliced<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if this.held.is_none() {
            // The first step runs with the task's own waker. If it ends short of the guest's
            // end, the poll below takes over: at once for a step, or to wait with its waker.
            let poll = Pin::new(&mut this.inner).poll(cx);
            if poll.is_ready() {
                return poll;
            }
        }
        let ends = (Instant::now() + this.slice).min(this.stop_at);
        let (deferred, waker) = this.held.get_or_insert_with(Deferred::waker);
        deferred.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(waker);
        loop {
            deferred.state.store(POLLING, Ordering::SeqCst);
            let poll = Pin::new(&mut this.inner).poll(&mut inner_cx);
            let woken = deferred.state.swap(IDLE, Ordering::SeqCst) == WOKEN;
            if poll.is_ready() {
                return poll;
            }
            if !woken {
                return Poll::Pending;
            }
            if Instant::now() >= ends {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

/// Not inside the inner future's poll: a wake-up goes straight to the task.
const IDLE: u8 = 0;
/// Inside the poll: a wake-up is held, so that [`Sliced`] may poll again at once.
const POLLING: u8 = 1;
/// Inside the poll, and woken.
const WOKEN: u8 = 2;

/// The waker the guest's future sees: it holds wake-ups that come while [`Sliced`] polls it (a
/// fuel step's yield, typically) and forwards the others to the task.
struct Deferred {
    /// [`IDLE`], [`POLLING`] or [`WOKEN`].
    state: AtomicU8,
    /// The task's waker, registered at each poll.
    task: AtomicWaker,
}

impl Deferred {
    /// A new one, idle, and the waker that wakes it.
    fn waker() -> (Arc<Self>, Waker) {
        let deferred = Arc::new(Self {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(deferred.clone());
        (deferred, waker)
    }
}

impl Wake for Deferred {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let held = self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::SeqCst, Ordering::SeqCst);
        if let Err(IDLE) = held {
            self.task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the times the task is woken.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// Yields the way Wasmtime's fuel steps do (wake itself, then `Pending`) `steps` times,
    /// then is ready with the number of times it was polled.
    fn stepping(steps: usize) -> impl Future<Output = usize> + Unpin {
        let mut polls = 0;
        std::future::poll_fn(move |cx| {
            polls += 1;
            if polls > steps {
                return Poll::Ready(polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    }

    fn poll<F: Future + Unpin>(sliced: &mut Sliced<F>, task: &Arc<Count>) -> Poll<F::Output> {
        let waker = Waker::from(task.clone());
        Pin::new(sliced).poll(&mut Context::from_waker(&waker))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn steps_within_the_slice_run_on_and_only_the_first_reaches_the_task() {
        let task = Arc::new(Count::default());
        let mut sliced = Sliced::new(stepping(1000), Duration::from_secs(3600), far());
        assert_eq!(poll(&mut sliced, &task), Poll::Ready(1001));
        assert_eq!(
            task.get(),
            1,
            "the first step ran with the task's own waker"
        );
    }

    #[test]
    fn a_decision_that_ends_within_its_first_step_is_polled_once() {
        let task = Arc::new(Count::default());
        let mut sliced = Sliced::new(stepping(0), Duration::ZERO, far());
        assert_eq!(poll(&mut sliced, &task), Poll::Ready(1));
        assert!(sliced.held.is_none(), "nothing was made for it");
    }

    #[test]
    fn a_spent_slice_passes_the_yield_on_to_the_task() {
        let task = Arc::new(Count::default());
        let mut sliced = Sliced::new(stepping(3), Duration::ZERO, far());
        assert_eq!(poll(&mut sliced, &task), Poll::Pending);
        assert_eq!(task.get(), 2, "the first step and the spent slice");
        assert_eq!(poll(&mut sliced, &task), Poll::Pending);
        assert_eq!(task.get(), 3);
        assert_eq!(poll(&mut sliced, &task), Poll::Ready(4));
    }

    #[test]
    fn a_passed_deadline_ends_the_slice() {
        let task = Arc::new(Count::default());
        let passed = Instant::now();
        let mut sliced = Sliced::new(stepping(3), Duration::from_secs(3600), passed);
        assert_eq!(poll(&mut sliced, &task), Poll::Pending);
        assert_eq!(task.get(), 2, "the task is woken to see its deadline");
    }

    #[test]
    fn a_wait_for_something_else_is_passed_on_and_its_wake_up_forwarded() {
        let task = Arc::new(Count::default());
        let (send, receive) = tokio::sync::oneshot::channel::<u8>();
        let mut sliced = Sliced::new(receive, Duration::from_secs(3600), far());
        assert!(poll(&mut sliced, &task).is_pending());
        assert_eq!(task.get(), 0, "waiting, not yielding");
        send.send(7).unwrap();
        assert_eq!(task.get(), 1, "the wake-up reached the task");
        assert_eq!(poll(&mut sliced, &task), Poll::Ready(Ok(7)));
    }
}
