//! The workers: shared queues, the per-thread context (local deque, LIFO slot), the
//! find-a-job order (priorities, local, global, stealing), the main loop and its sleep, and
//! the helping waits of `join`, `install` and `block_on`.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

use crate::error::SchedulingError;
use crate::job::{JobRef, JobVTable};
use crate::latch::{Latch, LockLatch, WorkerLatch};
use crate::sleep::Sleep;
use crate::task::{JoinHandle, Priority, TaskCell};

/// Lifecycle of a scheduler.
pub(crate) const RUNNING: usize = 0;
/// `shutdown(Drain)`: no new tasks from outside; workers exit once no task is live.
pub(crate) const DRAINING: usize = 1;
/// `shutdown(Cancel)`: queued tasks are cancelled instead of run; workers exit when idle.
pub(crate) const CANCELLING: usize = 2;
/// Workers gone; whatever is pushed now is cancelled by the pusher.
pub(crate) const TERMINATED: usize = 3;

const HIGH: usize = 2;
const NORMAL: usize = 1;
const LOW: usize = 0;

/// Every this many dispatches a worker looks at the global normal queue before its own
/// deque, so that tasks from outside are not starved by a worker feeding itself.
const GLOBAL_INTERVAL: u32 = 61;
/// Consecutive runs from the LIFO slot before its task is made stealable.
const MAX_LIFO_STREAK: u32 = 3;
/// Rounds of looking for work (with a `yield_now` in between) before a waiting `join` parks.
const HELP_ROUNDS: u32 = 16;

/// Counters of one worker, written only by that worker (plain load + store, no RMW).
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub(crate) executed: AtomicU64,
    pub(crate) stolen: AtomicU64,
    pub(crate) stolen_cross_node: AtomicU64,
    pub(crate) steal_attempts: AtomicU64,
    pub(crate) from_global: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) spawned: AtomicU64,
    pub(crate) completed: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// The steal order of one worker: victims of the same node, then the others.
type Victims = (Box<[usize]>, Box<[usize]>);

/// State shared by the workers, the scheduler handle and every task.
pub(crate) struct Shared {
    injectors: [Injector<JobRef>; 3],
    /// Queued high- and low-priority jobs, so that the hot path can skip those queues with
    /// one load.
    pending: [CachePadded<AtomicUsize>; 3],
    stealers: Box<[Stealer<JobRef>]>,
    /// Per worker: whom to steal from.
    victims: Box<[Victims]>,
    pub(crate) sleep: Sleep,
    pub(crate) counters: Box<[CachePadded<WorkerCounters>]>,
    external_spawned: AtomicU64,
    external_completed: AtomicU64,
    cancelled: AtomicU64,
    pub(crate) lifecycle: AtomicUsize,
    low_interval: u32,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("workers", &self.stealers.len())
            .field("lifecycle", &self.lifecycle.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The shared state and the local deques to move into the worker threads. `nodes[w]` is
    /// the node of worker `w` (all zero when placement is off).
    pub(crate) fn new(nodes: &[usize], low_interval: u32) -> (Arc<Self>, Vec<Worker<JobRef>>) {
        let n = nodes.len();
        let locals: Vec<Worker<JobRef>> = (0..n).map(|_| Worker::new_lifo()).collect();
        let victims = (0..n)
            .map(|w| {
                let others = (1..n).map(|k| (w + k) % n);
                let same: Box<[usize]> = others.clone().filter(|&v| nodes[v] == nodes[w]).collect();
                let cross: Box<[usize]> = others.filter(|&v| nodes[v] != nodes[w]).collect();
                (same, cross)
            })
            .collect();
        let shared = Arc::new(Self {
            injectors: [Injector::new(), Injector::new(), Injector::new()],
            pending: Default::default(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            victims,
            sleep: Sleep::new(n),
            counters: (0..n).map(|_| CachePadded::default()).collect(),
            external_spawned: AtomicU64::new(0),
            external_completed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            lifecycle: AtomicUsize::new(RUNNING),
            low_interval: low_interval.max(1),
        });
        (shared, locals)
    }

    pub(crate) fn workers(&self) -> usize {
        self.stealers.len()
    }

    pub(crate) fn local_depth(&self, worker: usize) -> usize {
        self.stealers[worker].len()
    }

    pub(crate) fn global_depth(&self, priority: Priority) -> usize {
        self.injectors[priority.index()].len()
    }

    /// Spawns `fut` as a heap task. `from_outside` submissions are refused once shutdown
    /// began; tasks spawning subtasks are not (a draining scheduler finishes their work).
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        fut: F,
        priority: Priority,
    ) -> Result<JoinHandle<F::Output>, SchedulingError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let on_worker = with_current(|ctx| ctx.is_some_and(|c| c.belongs_to(self)));
        if !on_worker && self.lifecycle.load(Ordering::Acquire) != RUNNING {
            return Err(SchedulingError::ShutDown);
        }
        let cell = TaskCell::new(fut, priority, Arc::clone(self));
        self.note_spawned();
        self.submit(Arc::clone(&cell).into_job(), priority);
        Ok(JoinHandle::new(cell))
    }

    /// Queues a task that became runnable (woken while idle).
    pub(crate) fn schedule_woken<F>(&self, task: Arc<TaskCell<F>>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let priority = task.priority();
        self.submit(task.into_job(), priority);
    }

    /// Queues a task woken during its own poll (a yield): behind the other local work of
    /// this worker when it is one of ours and the task is normal priority, else at the back
    /// of the global queue of its priority.
    pub(crate) fn requeue_yielded(&self, job: JobRef, priority: Priority) {
        self.queue(job, priority, WorkerContext::defer);
    }

    /// Normal work from one of our workers goes to its LIFO slot; everything else to the
    /// global queue of its priority.
    fn submit(&self, job: JobRef, priority: Priority) {
        self.queue(job, priority, WorkerContext::push_lifo);
    }

    /// Normal work from one of our workers goes where `place` puts it on that worker;
    /// anything else to the global queue of its priority.
    fn queue(&self, job: JobRef, priority: Priority, place: fn(&WorkerContext, JobRef)) {
        let mut job = Some(job);
        if priority == Priority::Normal {
            with_current(|ctx| {
                if let Some(ctx) = ctx.filter(|c| c.belongs_to(self))
                    && let Some(job) = job.take()
                {
                    place(ctx, job);
                }
            });
        }
        if let Some(job) = job {
            self.push_global(job, priority);
        }
    }

    /// Pushes to the back of the global queue of `priority` and wakes a worker.
    pub(crate) fn push_global(&self, job: JobRef, priority: Priority) {
        let p = priority.index();
        if p != NORMAL {
            self.pending[p].fetch_add(1, Ordering::AcqRel);
        }
        self.injectors[p].push(job);
        // `notify_one` fences before reading the sleep state, which also orders the push
        // before the lifecycle load below.
        self.sleep.notify_one();
        if self.lifecycle.load(Ordering::SeqCst) == TERMINATED {
            self.cancel_global();
        }
    }

    /// Cancels everything in the global queues (after the workers are gone).
    pub(crate) fn cancel_global(&self) {
        for (p, injector) in self.injectors.iter().enumerate() {
            loop {
                match injector.steal() {
                    Steal::Success(job) => {
                        if p != NORMAL {
                            self.pending[p].fetch_sub(1, Ordering::AcqRel);
                        }
                        job.cancel();
                    }
                    Steal::Retry => {}
                    Steal::Empty => break,
                }
            }
        }
    }

    fn note_spawned(&self) {
        with_current(|ctx| match ctx {
            Some(ctx) if ctx.belongs_to(self) => bump(&self.counters[ctx.index].spawned, 1),
            _ => {
                self.external_spawned.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    pub(crate) fn note_completed(&self, cancelled: bool) {
        if cancelled {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        with_current(|ctx| match ctx {
            Some(ctx) if ctx.belongs_to(self) => bump(&self.counters[ctx.index].completed, 1),
            _ => {
                self.external_completed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Tasks spawned and not finished. Completions are read before spawns, so a task
    /// spawned and finished in between counts as live, never the other way round.
    pub(crate) fn live(&self) -> u64 {
        let completed = self.external_completed.load(Ordering::SeqCst)
            + self
                .counters
                .iter()
                .map(|c| c.completed.load(Ordering::SeqCst))
                .sum::<u64>();
        let spawned = self.external_spawned.load(Ordering::SeqCst)
            + self
                .counters
                .iter()
                .map(|c| c.spawned.load(Ordering::SeqCst))
                .sum::<u64>();
        spawned.saturating_sub(completed)
    }

    pub(crate) fn completed_and_cancelled(&self) -> (u64, u64) {
        let completed = self.external_completed.load(Ordering::SeqCst)
            + self
                .counters
                .iter()
                .map(|c| c.completed.load(Ordering::SeqCst))
                .sum::<u64>();
        (completed, self.cancelled.load(Ordering::SeqCst))
    }

    /// Whether any queue a sleeping worker could take from holds work.
    fn has_work(&self) -> bool {
        self.injectors.iter().any(|i| !i.is_empty()) || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Runs `f` on a worker and blocks the calling thread (not a worker) until it returns.
    pub(crate) fn install<R, F>(self: &Arc<Self>, f: F) -> Result<R, SchedulingError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        if with_current(|ctx| ctx.is_some_and(|c| c.belongs_to(self))) {
            return Ok(f());
        }
        if self.lifecycle.load(Ordering::Acquire) != RUNNING {
            return Err(SchedulingError::ShutDown);
        }
        let job = StackJob::new(f, LockLatch::default());
        // SAFETY: we block on the latch below until the job has run, so the frame outlives it.
        self.push_global(unsafe { job.as_job_ref() }, Priority::Normal);
        job.latch.wait();
        match job.into_result() {
            Ok(r) => Ok(r),
            Err(payload) => resume_unwind(payload),
        }
    }
}

thread_local! {
    /// The context of the worker running on this thread, null elsewhere. Set for the whole
    /// main loop of a worker, which encloses every job it runs.
    static CURRENT: Cell<*const WorkerContext> = const { Cell::new(std::ptr::null()) };
}

/// Calls `f` with the current worker's context, if this thread is a worker.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&WorkerContext>) -> R) -> R {
    let ptr = CURRENT.with(Cell::get);
    // SAFETY: non-null only while the worker's main loop runs (see `run_worker`), and the
    // reference does not escape `f`.
    f(unsafe { ptr.as_ref() })
}

/// What one worker thread owns.
pub(crate) struct WorkerContext {
    index: usize,
    shared: Arc<Shared>,
    local: Worker<JobRef>,
    lifo: Cell<Option<JobRef>>,
    lifo_streak: Cell<u32>,
    /// Tasks that yielded (or were woken during their own poll), oldest first: they go
    /// behind the local work, into the deque once it runs dry.
    deferred: RefCell<Vec<JobRef>>,
    tick: Cell<u32>,
    rng: Cell<u64>,
    searching: Cell<bool>,
}

impl WorkerContext {
    fn belongs_to(&self, shared: &Shared) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.shared), shared)
    }

    fn counters(&self) -> &WorkerCounters {
        &self.shared.counters[self.index]
    }

    fn push_lifo(&self, job: JobRef) {
        if let Some(prev) = self.lifo.replace(Some(job)) {
            self.local.push(prev);
            self.shared.sleep.notify_one();
        }
    }

    /// Puts a yielded task behind the local work (see `flush_deferred`).
    fn defer(&self, job: JobRef) {
        self.deferred.borrow_mut().push(job);
    }

    fn push_local(&self, job: JobRef) {
        self.local.push(job);
        self.shared.sleep.notify_one();
    }

    fn take_priority(&self, p: usize) -> Option<JobRef> {
        loop {
            match self.shared.injectors[p].steal() {
                Steal::Success(job) => {
                    self.shared.pending[p].fetch_sub(1, Ordering::AcqRel);
                    bump(&self.counters().from_global, 1);
                    return Some(job);
                }
                Steal::Retry => {}
                Steal::Empty => return None,
            }
        }
    }

    fn take_global_normal(&self) -> Option<JobRef> {
        loop {
            match self.shared.injectors[NORMAL].steal_batch_and_pop(&self.local) {
                Steal::Success(job) => {
                    bump(&self.counters().from_global, 1);
                    return Some(job);
                }
                Steal::Retry => {}
                Steal::Empty => return None,
            }
        }
    }

    /// The next job without looking at other workers: high priority first, the periodic
    /// low-priority and global turns, then the LIFO slot and the local deque.
    fn next_local(&self) -> Option<JobRef> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        let shared = &*self.shared;
        // The low turn comes first so that endless high-priority work cannot starve it.
        if tick.is_multiple_of(shared.low_interval)
            && shared.pending[LOW].load(Ordering::Relaxed) > 0
            && let Some(job) = self.take_priority(LOW)
        {
            return Some(job);
        }
        if shared.pending[HIGH].load(Ordering::Relaxed) > 0
            && let Some(job) = self.take_priority(HIGH)
        {
            return Some(job);
        }
        if tick.is_multiple_of(GLOBAL_INTERVAL)
            && let Some(job) = self.take_global_normal()
        {
            return Some(job);
        }
        if let Some(job) = self.lifo.take() {
            if self.lifo_streak.get() < MAX_LIFO_STREAK {
                self.lifo_streak.set(self.lifo_streak.get() + 1);
                return Some(job);
            }
            // The streak is over: the queued job goes first and the slot's job behind it,
            // where others can steal it. With nothing queued there is nobody to be fair to,
            // so it just runs (waking a worker for it would only bounce it between threads).
            self.lifo_streak.set(0);
            return Some(match self.local.pop() {
                Some(queued) => {
                    self.push_local(job);
                    queued
                }
                None => job,
            });
        }
        self.lifo_streak.set(0);
        if tick.is_multiple_of(GLOBAL_INTERVAL) {
            // Yielded tasks also get a turn while the deque never runs dry.
            self.flush_deferred();
        }
        self.local.pop().or_else(|| {
            self.flush_deferred();
            self.local.pop()
        })
    }

    /// Moves the deferred tasks into the deque, oldest on top (popped first), where idle
    /// workers can steal them too.
    fn flush_deferred(&self) {
        let mut deferred = self.deferred.borrow_mut();
        if deferred.is_empty() {
            return;
        }
        for job in deferred.drain(..).rev() {
            self.local.push(job);
        }
        drop(deferred);
        self.shared.sleep.notify_one();
    }

    fn next_random(&self) -> u64 {
        // xorshift64*: cheap, per worker, only spreads the victims.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Global normal queue, then batches stolen from the other workers (same node first),
    /// then the low-priority queue.
    fn find_elsewhere(&self) -> Option<JobRef> {
        if let Some(job) = self.take_global_normal() {
            return Some(job);
        }
        let (same, cross) = &self.shared.victims[self.index];
        let counters = self.counters();
        for _ in 0..3 {
            let mut retry = false;
            for (group, is_cross) in [(same, false), (cross, true)] {
                if group.is_empty() {
                    continue;
                }
                let start = self.next_random() as usize % group.len();
                for k in 0..group.len() {
                    let victim = group[(start + k) % group.len()];
                    bump(&counters.steal_attempts, 1);
                    match self.shared.stealers[victim].steal_batch_and_pop(&self.local) {
                        Steal::Success(job) => {
                            bump(&counters.stolen, 1);
                            if is_cross {
                                bump(&counters.stolen_cross_node, 1);
                            }
                            return Some(job);
                        }
                        Steal::Retry => retry = true,
                        Steal::Empty => {}
                    }
                }
            }
            if !retry {
                break;
            }
        }
        if self.shared.pending[LOW].load(Ordering::Relaxed) > 0 {
            return self.take_priority(LOW);
        }
        None
    }

    fn execute(&self, job: JobRef) {
        bump(&self.counters().executed, 1);
        if self.shared.lifecycle.load(Ordering::Relaxed) >= CANCELLING {
            job.cancel();
        } else {
            job.run();
        }
    }

    fn stop_searching(&self) {
        if self.searching.replace(false)
            && self.shared.sleep.stop_searching()
            && !self.local.is_empty()
        {
            // The last searcher found a batch: let another worker come for the rest.
            self.shared.sleep.notify_one();
        }
    }

    /// Sleeps until woken. Returns `true` when the worker must exit.
    fn sleep_once(&self) -> bool {
        let shared = &*self.shared;
        shared
            .sleep
            .prepare_sleep(self.index, self.searching.replace(false));
        let lifecycle = shared.lifecycle.load(Ordering::SeqCst);
        if lifecycle >= CANCELLING {
            shared.sleep.cancel_sleep(self.index);
            return true;
        }
        if shared.has_work() {
            shared.sleep.cancel_sleep(self.index);
            self.searching.set(true);
            return false;
        }
        if lifecycle == DRAINING && shared.live() == 0 {
            shared.sleep.cancel_sleep(self.index);
            shared.lifecycle.store(TERMINATED, Ordering::SeqCst);
            shared.sleep.notify_all();
            return true;
        }
        bump(&self.counters().parks, 1);
        shared.sleep.park(self.index);
        self.searching.set(true);
        false
    }

    /// Runs other jobs until `done`, then parks through `park` when there are none.
    fn help_until(&self, done: &dyn Fn() -> bool, park: &dyn Fn()) {
        let mut idle_rounds = 0;
        while !done() {
            if let Some(job) = self.next_local().or_else(|| self.find_elsewhere()) {
                self.execute(job);
                idle_rounds = 0;
                continue;
            }
            idle_rounds += 1;
            if idle_rounds < HELP_ROUNDS {
                std::thread::yield_now();
            } else {
                park();
                idle_rounds = 0;
            }
        }
    }

    /// `block_on` on a worker: polls `fut`, running other jobs while it is pending.
    fn block_on<F: Future + ?Sized>(&self, mut fut: Pin<&mut F>) -> F::Output {
        let waker = Waker::from(Arc::new(WorkerWaker {
            shared: Arc::clone(&self.shared),
            index: self.index,
        }));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            if let Some(job) = self.next_local().or_else(|| self.find_elsewhere()) {
                self.execute(job);
            } else {
                self.shared.sleep.parker(self.index).park();
            }
        }
    }
}

/// Wakes a worker blocked in `block_on`.
struct WorkerWaker {
    shared: Arc<Shared>,
    index: usize,
}

impl Wake for WorkerWaker {
    fn wake(self: Arc<Self>) {
        self.shared.sleep.parker(self.index).unpark();
    }
}

/// The main loop of worker `index`; returns when the scheduler shuts down.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize, local: Worker<JobRef>) {
    let ctx = WorkerContext {
        index,
        shared,
        local,
        lifo: Cell::new(None),
        lifo_streak: Cell::new(0),
        deferred: RefCell::new(Vec::new()),
        tick: Cell::new(0),
        rng: Cell::new(
            0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
        ),
        searching: Cell::new(false),
    };
    /// Clears `CURRENT` however the loop ends.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(std::ptr::null()));
        }
    }
    CURRENT.with(|c| c.set(&ctx));
    let _reset = Reset;
    let counters = ctx.counters();
    let mut busy_since = Instant::now();
    loop {
        if let Some(job) = ctx.next_local() {
            ctx.execute(job);
            continue;
        }
        if !ctx.searching.replace(true) {
            ctx.shared.sleep.start_searching();
        }
        if let Some(job) = ctx.find_elsewhere() {
            ctx.stop_searching();
            ctx.execute(job);
            continue;
        }
        bump(&counters.busy_ns, busy_since.elapsed().as_nanos() as u64);
        if ctx.sleep_once() {
            break;
        }
        busy_since = Instant::now();
    }
    if ctx.searching.replace(false) {
        ctx.shared.sleep.stop_searching();
    }
    // Whatever is left here was queued after the last look: cancelled (stack jobs still run).
    ctx.flush_deferred();
    while let Some(job) = ctx.lifo.take().or_else(|| ctx.local.pop()) {
        job.cancel();
    }
}

/// A job that lives in the frame of a thread that waits for it: the second half of a `join`,
/// or the body of an `install`.
pub(crate) struct StackJob<F, R, L> {
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<std::thread::Result<R>>>,
    pub(crate) latch: L,
}

impl<F, R, L> StackJob<F, R, L>
where
    F: FnOnce() -> R + Send,
    R: Send,
    L: Latch,
{
    pub(crate) fn new(func: F, latch: L) -> Self {
        Self {
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(None),
            latch,
        }
    }

    /// # Safety
    /// The job must not move or be dropped before it has run (its latch is set, or its
    /// owner popped it back and ran it inline).
    pub(crate) unsafe fn as_job_ref(&self) -> JobRef {
        let vtable: &'static JobVTable = const {
            &JobVTable {
                run: Self::execute,
                cancel: Self::execute,
            }
        };
        // SAFETY: the caller keeps the job in place until it ran.
        unsafe { JobRef::new(NonNull::from(self).cast(), vtable) }
    }

    /// # Safety
    /// `ptr` comes from `as_job_ref` and the job has not run yet.
    unsafe fn execute(ptr: NonNull<()>) {
        let this = ptr.as_ptr().cast::<Self>().cast_const();
        // SAFETY: the queue handed the job to this thread only; the owner reads `result`
        // only after the latch is set.
        unsafe {
            let func = (*(*this).func.get()).take().expect("a stack job runs once");
            *(*this).result.get() = Some(catch_unwind(AssertUnwindSafe(func)));
            L::set(&raw const (*this).latch);
        }
    }

    /// Runs the job on its owner's thread (it was popped back before anyone stole it).
    fn run_inline(&self) -> std::thread::Result<R> {
        // SAFETY: the owner popped the job back, so no other thread has it.
        let func = unsafe { (*self.func.get()).take() }.expect("a stack job runs once");
        catch_unwind(AssertUnwindSafe(func))
    }

    pub(crate) fn into_result(self) -> std::thread::Result<R> {
        self.result
            .into_inner()
            .expect("the latch is set after the result")
    }
}

/// Runs `a` and `b`, potentially in parallel, and returns both results.
///
/// On a worker, `b` is pushed onto the worker's deque (where idle workers can steal it) and
/// `a` runs at once; then the worker pops `b` back and runs it inline, or, if it was stolen,
/// runs other work until the thief is done. Nothing is allocated. Off the workers both run on
/// the calling thread, one after the other. A panic in either is resumed on the caller once
/// both are done.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    with_current(|ctx| match ctx {
        None => (a(), b()),
        Some(ctx) => join_on_worker(ctx, a, b),
    })
}

fn join_on_worker<A, B, RA, RB>(ctx: &WorkerContext, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let parker = ctx.shared.sleep.parker(ctx.index);
    let job_b = StackJob::new(b, WorkerLatch::new(parker));
    // SAFETY: this frame waits below until `job_b` has run, inline or by a thief.
    let job_ref = unsafe { job_b.as_job_ref() };
    ctx.push_local(job_ref);
    let ra = catch_unwind(AssertUnwindSafe(a));
    let rb = loop {
        if job_b.latch.probe() {
            break job_b.into_result();
        }
        match ctx.local.pop() {
            Some(job) if job.same(job_ref) => break job_b.run_inline(),
            Some(job) => ctx.execute(job),
            None => {
                ctx.help_until(&|| job_b.latch.probe(), &|| job_b.latch.wait(parker));
                break job_b.into_result();
            }
        }
    };
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(payload), _) | (_, Err(payload)) => resume_unwind(payload),
    }
}

/// Drives `fut` to completion on the calling thread. On a worker thread it runs other jobs
/// while the future is pending (so awaiting a task spawned on the same scheduler cannot
/// deadlock it); elsewhere it parks the thread between polls.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    with_current(|ctx| match ctx {
        Some(ctx) => ctx.block_on(fut.as_mut()),
        None => block_on_thread(fut.as_mut()),
    })
}

/// Wakes a thread parked in `block_on`.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on_thread<F: Future + ?Sized>(mut fut: Pin<&mut F>) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Spawns `f` on the scheduler whose worker calls this (like `tokio::spawn`), normal priority.
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, SchedulingError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_future(crate::task::OnceFuture::new(f))
}

/// Spawns the future `fut` on the scheduler whose worker calls this, normal priority.
pub fn spawn_future<F>(fut: F) -> Result<JoinHandle<F::Output>, SchedulingError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    with_current(move |ctx| match ctx {
        Some(ctx) => ctx.shared.spawn(fut, Priority::Normal),
        None => Err(SchedulingError::NotOnWorker),
    })
}
