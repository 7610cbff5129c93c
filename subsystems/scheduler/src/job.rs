//! What the queues hold: a type-erased pointer to a runnable job, two words wide.
//!
//! A job is either a heap task (an `Arc` turned into a raw pointer; running it gives the
//! reference back) or a stack job of `join`/`install` (a pointer into the frame of a thread
//! that blocks until the job has run). Every job in a queue is run or cancelled exactly
//! once: the queue hands it to one thread only.

use std::ptr::NonNull;

/// How to run or cancel one kind of job.
#[derive(Debug)]
pub(crate) struct JobVTable {
    /// Runs the job, consuming the queue's reference.
    pub(crate) run: unsafe fn(NonNull<()>),
    /// Disposes of the job without running its user code where that is allowed (heap
    /// tasks); stack jobs run anyway, because a frame is waiting for them.
    pub(crate) cancel: unsafe fn(NonNull<()>),
}

/// A queued job.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobRef {
    ptr: NonNull<()>,
    vtable: &'static JobVTable,
}

// SAFETY: a job is handed from the thread that queued it to the one that runs it; every
// job kind behind a `JobRef` is `Send` (heap tasks hold `Send` futures, stack jobs `Send`
// closures and results).
unsafe impl Send for JobRef {}

impl JobRef {
    /// # Safety
    /// `ptr` must stay valid until `vtable.run` or `vtable.cancel` is called with it, and
    /// exactly one of them must be called, once.
    pub(crate) unsafe fn new(ptr: NonNull<()>, vtable: &'static JobVTable) -> Self {
        Self { ptr, vtable }
    }

    /// Runs the job.
    pub(crate) fn run(self) {
        // SAFETY: `new`'s contract; a `JobRef` is taken out of a queue once.
        unsafe { (self.vtable.run)(self.ptr) }
    }

    /// Cancels the job (see [`JobVTable::cancel`]).
    pub(crate) fn cancel(self) {
        // SAFETY: as for `run`.
        unsafe { (self.vtable.cancel)(self.ptr) }
    }

    /// Whether `self` and `other` are the same job.
    pub(crate) fn same(self, other: Self) -> bool {
        self.ptr == other.ptr
    }
}
