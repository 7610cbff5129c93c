//! Tasks: the public `Task` of the seed API, the heap task cell every task runs in, its
//! completion slot and `JoinHandle`, and `yield_now`.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

use crate::error::WaitError;
use crate::job::{JobRef, JobVTable};
use crate::state::TaskState;
use crate::worker::Shared;

/// Scheduling priority. A high-priority task is taken before any queued normal or low one;
/// a low-priority task still gets one dispatch in every `low_priority_interval` even while
/// higher-priority work never runs out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Background work.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Latency-sensitive work.
    High,
}

impl Priority {
    /// Index of the priority's global queue.
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Low => 0,
            Self::Normal => 1,
            Self::High => 2,
        }
    }
}

/// Identifies a task submitted with [`crate::WorkStealingScheduler::schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The value a [`Task`] returned, type-erased; get it back with [`TaskResult::downcast`].
pub struct TaskResult {
    value: Box<dyn Any + Send>,
}

impl TaskResult {
    fn new<T: Any + Send>(value: T) -> Self {
        Self {
            value: Box::new(value),
        }
    }

    /// The value, if it is a `T`; `self` back otherwise.
    pub fn downcast<T: Any>(self) -> Result<T, Self> {
        match self.value.downcast::<T>() {
            Ok(v) => Ok(*v),
            Err(value) => Err(Self { value }),
        }
    }

    /// A reference to the value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }
}

impl fmt::Debug for TaskResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskResult").finish_non_exhaustive()
    }
}

type BoxedFn = Box<dyn FnOnce() -> TaskResult + Send>;
type BoxedFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

/// A unit of work for [`crate::WorkStealingScheduler::schedule`]: a closure or a future whose
/// result is kept until [`crate::WorkStealingScheduler::wait_for_completion`] takes it.
pub struct Task {
    body: TaskBody,
}

enum TaskBody {
    Sync(Option<BoxedFn>),
    Async(BoxedFuture),
}

impl Task {
    /// A task that runs `f` once on a worker.
    pub fn new<F, T>(f: F) -> Self
    where
        F: FnOnce() -> T + Send + 'static,
        T: Any + Send,
    {
        Self {
            body: TaskBody::Sync(Some(Box::new(move || TaskResult::new(f())))),
        }
    }

    /// A task that drives `fut` to completion on the workers.
    pub fn from_future<F>(fut: F) -> Self
    where
        F: Future + Send + 'static,
        F::Output: Any + Send,
    {
        Self {
            body: TaskBody::Async(Box::pin(async move { TaskResult::new(fut.await) })),
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.body {
            TaskBody::Sync(_) => "closure",
            TaskBody::Async(_) => "future",
        };
        f.debug_struct("Task").field("kind", &kind).finish()
    }
}

impl Future for Task {
    type Output = TaskResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TaskResult> {
        // `Task` is `Unpin`: both variants are boxes.
        match &mut self.get_mut().body {
            TaskBody::Sync(f) => Poll::Ready(f.take().expect("a closure task is polled once")()),
            TaskBody::Async(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// Runs a closure on its first poll: how `spawn(f)` becomes a task without a second box.
pub(crate) struct OnceFuture<F>(Option<F>);

impl<F> OnceFuture<F> {
    pub(crate) fn new(f: F) -> Self {
        Self(Some(f))
    }
}

impl<F> Unpin for OnceFuture<F> {}

impl<F: FnOnce() -> T, T> Future for OnceFuture<F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        let f = self
            .get_mut()
            .0
            .take()
            .expect("a closure task is polled once");
        Poll::Ready(f())
    }
}

/// The completion slot of a task.
enum Slot<T> {
    Waiting(Vec<Waker>),
    Ready(Result<T, WaitError>),
    Taken,
}

/// Reading a task's result without knowing its future type.
pub(crate) trait TaskOutput<T>: Send + Sync {
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, WaitError>>;
    fn is_finished(&self) -> bool;
}

/// A heap task: the future, its state word, its completion slot and its scheduler.
pub(crate) struct TaskCell<F: Future> {
    state: TaskState,
    priority: Priority,
    shared: Arc<Shared>,
    /// Touched only by the thread that holds the task `RUNNING` (or cancels it while it is
    /// `SCHEDULED` and out of every queue).
    future: UnsafeCell<Option<F>>,
    slot: Mutex<Slot<F::Output>>,
}

// SAFETY: `future` is accessed by one thread at a time, as the state word arbitrates (see
// the field); the output crosses threads only through the mutex, and `F`, `F::Output` are
// `Send`.
unsafe impl<F: Future + Send> Sync for TaskCell<F> where F::Output: Send {}

impl<F> TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// A new task, `SCHEDULED`; the caller queues the returned job.
    pub(crate) fn new(fut: F, priority: Priority, shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            state: TaskState::new_scheduled(),
            priority,
            shared,
            future: UnsafeCell::new(Some(fut)),
            slot: Mutex::new(Slot::Waiting(Vec::new())),
        })
    }

    /// The queue's reference to this task, as a job.
    pub(crate) fn into_job(self: Arc<Self>) -> JobRef {
        let vtable: &'static JobVTable = const {
            &JobVTable {
                run: Self::run_job,
                cancel: Self::cancel_job,
            }
        };
        let ptr = NonNull::new(Arc::into_raw(self).cast_mut().cast::<()>())
            .expect("Arc::into_raw is never null");
        // SAFETY: the pointer owns one strong count, given back by exactly one of the
        // vtable functions below.
        unsafe { JobRef::new(ptr, vtable) }
    }

    pub(crate) fn priority(&self) -> Priority {
        self.priority
    }

    /// # Safety
    /// `ptr` comes from `into_job` of a `TaskCell<F>` and is consumed once.
    unsafe fn run_job(ptr: NonNull<()>) {
        // SAFETY: see above.
        let task = unsafe { Arc::from_raw(ptr.as_ptr().cast::<Self>()) };
        task.run();
    }

    /// # Safety
    /// As `run_job`.
    unsafe fn cancel_job(ptr: NonNull<()>) {
        // SAFETY: see above.
        let task = unsafe { Arc::from_raw(ptr.as_ptr().cast::<Self>()) };
        if task.state.transition_to_running() {
            task.finish(Err(WaitError::Cancelled));
        }
    }

    fn run(self: Arc<Self>) {
        if !self.state.transition_to_running() {
            return;
        }
        let waker = Waker::from(Arc::clone(&self));
        let mut cx = Context::from_waker(&waker);
        let polled = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: we hold the task RUNNING, so no other thread touches the future; it
            // lives inside the `Arc` and is never moved until dropped in place.
            let fut = unsafe { &mut *self.future.get() };
            let fut = fut.as_mut().expect("a running task has its future");
            // SAFETY: pinned in place, as above.
            unsafe { Pin::new_unchecked(fut) }.poll(&mut cx)
        }));
        match polled {
            Ok(Poll::Pending) => {
                if self.state.transition_to_idle() {
                    // Woken during its own poll (a yield, or a wake from elsewhere): behind
                    // the other queued tasks, so that they run first.
                    let (prio, shared) = (self.priority, Arc::clone(&self.shared));
                    shared.requeue_yielded(self.into_job(), prio);
                }
            }
            Ok(Poll::Ready(v)) => self.finish(Ok(v)),
            Err(payload) => self.finish(Err(WaitError::Panicked(panic_message(&*payload)))),
        }
    }

    /// Drops the future, stores the outcome and wakes the waiters. The caller holds the task
    /// `RUNNING`.
    fn finish(&self, outcome: Result<F::Output, WaitError>) {
        // A future's destructor may panic too; the worker survives that as well.
        // SAFETY: the caller holds the task RUNNING (exclusive access to `future`).
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { *self.future.get() = None }));
        let outcome = match (outcome, dropped) {
            (Ok(_), Err(payload)) => Err(WaitError::Panicked(panic_message(&*payload))),
            (outcome, _) => outcome,
        };
        let cancelled = matches!(outcome, Err(WaitError::Cancelled));
        self.state.transition_to_complete();
        let wakers = {
            let mut slot = self.slot.lock();
            match std::mem::replace(&mut *slot, Slot::Ready(outcome)) {
                Slot::Waiting(w) => w,
                Slot::Ready(_) | Slot::Taken => Vec::new(),
            }
        };
        self.shared.note_completed(cancelled);
        for w in wakers {
            w.wake();
        }
    }
}

impl<F> Wake for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn wake(self: Arc<Self>) {
        if self.state.transition_to_scheduled() {
            let shared = Arc::clone(&self.shared);
            shared.schedule_woken(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.transition_to_scheduled() {
            self.shared.schedule_woken(Arc::clone(self));
        }
    }
}

impl<F> TaskOutput<F::Output> for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, WaitError>> {
        let mut slot = self.slot.lock();
        match &mut *slot {
            Slot::Waiting(wakers) => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            Slot::Ready(_) => match std::mem::replace(&mut *slot, Slot::Taken) {
                Slot::Ready(r) => Poll::Ready(r),
                Slot::Waiting(_) | Slot::Taken => unreachable!("matched Ready above"),
            },
            Slot::Taken => Poll::Ready(Err(WaitError::ResultTaken)),
        }
    }

    fn is_finished(&self) -> bool {
        !matches!(*self.slot.lock(), Slot::Waiting(_))
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The result of a spawned task. Await it, or [`JoinHandle::join`] it from a thread;
/// dropping it detaches the task (it still runs).
pub struct JoinHandle<T> {
    cell: Arc<dyn TaskOutput<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(cell: Arc<dyn TaskOutput<T>>) -> Self {
        Self { cell }
    }

    pub(crate) fn into_cell(self) -> Arc<dyn TaskOutput<T>> {
        self.cell
    }

    /// Whether the task finished (its result may already have been taken).
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }

    /// Blocks until the task finishes and returns its result. On a worker thread it runs
    /// other tasks while it waits instead of blocking the worker.
    pub fn join(self) -> Result<T, WaitError> {
        crate::block_on(self)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, WaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_output(cx)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Gives other tasks a turn: the calling task goes behind the work queued on its worker.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
