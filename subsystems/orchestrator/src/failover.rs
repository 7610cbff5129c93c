//! Failover state: a cool-down circuit breaker per model and the token-bucket retry budget.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Whether a model is in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// In rotation.
    Closed,
    /// Out of rotation until its cool-down ends.
    Open,
    /// Cool-down over: the next call is a probe that closes or re-opens the circuit.
    HalfOpen,
}

/// When circuits open and how long they stay open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BreakerPolicy {
    /// Outcomes remembered per model (at most 64).
    pub(crate) window: u32,
    /// Fewest outcomes in the window before the failure ratio may open the circuit.
    pub(crate) min_calls: u32,
    /// Failure ratio in the window that opens the circuit.
    pub(crate) failure_ratio: f64,
    /// Consecutive failures that open the circuit whatever the window says.
    pub(crate) consecutive_failures: u32,
    /// First cool-down; each failed probe doubles it up to `max_cool_down`.
    pub(crate) cool_down: Duration,
    pub(crate) max_cool_down: Duration,
}

/// What a dispatch to a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A call to a model in rotation.
    Normal,
    /// The one probe of a half-open circuit.
    Probe,
    /// The model is out of rotation (or its probe is taken).
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// One model's breaker: a window of recent outcomes (bit set = failure) and the state.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    state: State,
    outcomes: u64,
    len: u32,
    consecutive: u32,
    cool_down: Duration,
    opens: u64,
}

impl CircuitBreaker {
    pub(crate) fn new(policy: &BreakerPolicy) -> Self {
        Self {
            state: State::Closed,
            outcomes: 0,
            len: 0,
            consecutive: 0,
            cool_down: policy.cool_down,
            opens: 0,
        }
    }

    /// The state as of `now` (an open circuit whose cool-down is over reads half-open).
    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        match self.state {
            State::Closed => CircuitState::Closed,
            State::Open { until } if now < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether a call could be dispatched now, without reserving it.
    pub(crate) fn admits(&self, now: Instant) -> bool {
        match self.state {
            State::Closed => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probing } => !probing,
        }
    }

    /// Reserves a call: in a half-open circuit only one probe at a time.
    pub(crate) fn dispatch(&mut self, now: Instant) -> Admission {
        match self.state {
            State::Closed => Admission::Normal,
            State::Open { until } if now < until => Admission::Rejected,
            State::HalfOpen { probing: true } => Admission::Rejected,
            State::Open { .. } | State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
        }
    }

    /// A successful call; a successful probe closes the circuit with a fresh window.
    pub(crate) fn on_success(&mut self, policy: &BreakerPolicy, admission: Admission) {
        if admission == Admission::Probe {
            tracing::info!("probe succeeded, circuit closed");
            self.state = State::Closed;
            self.outcomes = 0;
            self.len = 0;
            self.cool_down = policy.cool_down;
        }
        self.consecutive = 0;
        self.push(policy, false);
    }

    /// A failed call; it may open the circuit. A failed probe re-opens it for twice the
    /// last cool-down (capped), so a model that stays down is probed less and less often.
    pub(crate) fn on_failure(
        &mut self,
        policy: &BreakerPolicy,
        admission: Admission,
        now: Instant,
    ) {
        if admission == Admission::Probe {
            self.cool_down = (self.cool_down * 2).min(policy.max_cool_down);
            self.open(now);
            return;
        }
        self.consecutive += 1;
        self.push(policy, true);
        let failures = self.outcomes.count_ones();
        let ratio_trips = self.len >= policy.min_calls
            && f64::from(failures) >= policy.failure_ratio * f64::from(self.len);
        if self.state == State::Closed
            && (ratio_trips || self.consecutive >= policy.consecutive_failures)
        {
            self.open(now);
        }
    }

    /// A call that ended without a verdict (deadline, cancellation). A probe that ends so
    /// proved nothing: the circuit re-opens for the same cool-down.
    pub(crate) fn on_abandon(&mut self, admission: Admission, now: Instant) {
        if admission == Admission::Probe {
            self.open(now);
        }
    }

    pub(crate) fn opens(&self) -> u64 {
        self.opens
    }

    fn open(&mut self, now: Instant) {
        tracing::info!(cool_down = ?self.cool_down, "circuit opened");
        self.state = State::Open {
            until: now + self.cool_down,
        };
        self.opens += 1;
        self.consecutive = 0;
    }

    fn push(&mut self, policy: &BreakerPolicy, failed: bool) {
        let window = policy.window.clamp(1, 64);
        let mask = if window == 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        self.outcomes = ((self.outcomes << 1) | u64::from(failed)) & mask;
        self.len = (self.len + 1).min(window);
    }
}

/// A token bucket that bounds retries (Finagle's `RetryBudget`): every task deposits
/// `ratio` tokens, time adds `per_sec`, each retry takes one, the bucket holds `max`. So
/// retries stay below `initial + ratio x tasks + per_sec x seconds` however many calls fail.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    tokens: f64,
    ratio: f64,
    per_sec: f64,
    max: f64,
    last: Instant,
}

impl RetryBudget {
    /// A bucket that starts with one second's worth of the time-based allowance.
    pub(crate) fn new(ratio: f64, per_sec: f64, max: f64, now: Instant) -> Self {
        Self {
            tokens: per_sec.min(max),
            ratio,
            per_sec,
            max,
            last: now,
        }
    }

    pub(crate) fn deposit(&mut self) {
        self.tokens = (self.tokens + self.ratio).min(self.max);
    }

    /// Takes a token if there is one.
    pub(crate) fn try_withdraw(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.per_sec).min(self.max);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The breakers of every registered model, by index, and the shared retry budget.
#[derive(Debug)]
pub(crate) struct FailoverManager {
    pub(crate) policy: BreakerPolicy,
    breakers: Vec<Mutex<CircuitBreaker>>,
    budget: Mutex<RetryBudget>,
}

impl FailoverManager {
    pub(crate) fn new(policy: BreakerPolicy, budget: RetryBudget) -> Self {
        Self {
            policy,
            breakers: Vec::new(),
            budget: Mutex::new(budget),
        }
    }

    pub(crate) fn add_model(&mut self) {
        self.breakers
            .push(Mutex::new(CircuitBreaker::new(&self.policy)));
    }

    pub(crate) fn admits(&self, model: usize, now: Instant) -> bool {
        self.breakers[model].lock().admits(now)
    }

    pub(crate) fn dispatch(&self, model: usize, now: Instant) -> Admission {
        self.breakers[model].lock().dispatch(now)
    }

    pub(crate) fn on_success(&self, model: usize, admission: Admission) {
        self.breakers[model]
            .lock()
            .on_success(&self.policy, admission);
    }

    pub(crate) fn on_failure(&self, model: usize, admission: Admission, now: Instant) {
        self.breakers[model]
            .lock()
            .on_failure(&self.policy, admission, now);
    }

    pub(crate) fn on_abandon(&self, model: usize, admission: Admission, now: Instant) {
        self.breakers[model].lock().on_abandon(admission, now);
    }

    /// `(state, times opened)` of `model`.
    pub(crate) fn circuit(&self, model: usize, now: Instant) -> (CircuitState, u64) {
        let b = self.breakers[model].lock();
        (b.state(now), b.opens())
    }

    pub(crate) fn deposit(&self) {
        self.budget.lock().deposit();
    }

    pub(crate) fn try_retry(&self, now: Instant) -> bool {
        self.budget.lock().try_withdraw(now)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            window: 20,
            min_calls: 10,
            failure_ratio: 0.5,
            consecutive_failures: 5,
            cool_down: Duration::from_millis(100),
            max_cool_down: Duration::from_millis(400),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_then_a_probe_closes() {
        let p = policy();
        let mut b = CircuitBreaker::new(&p);
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(b.dispatch(now), Admission::Normal);
            b.on_failure(&p, Admission::Normal, now);
        }
        assert_eq!(b.state(now), CircuitState::Closed);
        b.on_failure(&p, Admission::Normal, now);
        assert_eq!(b.state(now), CircuitState::Open);
        assert!(!b.admits(now + Duration::from_millis(99)));
        let later = now + Duration::from_millis(100);
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        assert_eq!(b.dispatch(later), Admission::Probe);
        // One probe at a time.
        assert!(!b.admits(later));
        assert_eq!(b.dispatch(later), Admission::Rejected);
        b.on_success(&p, Admission::Probe);
        assert_eq!(b.state(later), CircuitState::Closed);
        assert_eq!(b.opens(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_double_the_cool_down_up_to_the_cap() {
        let p = policy();
        let mut b = CircuitBreaker::new(&p);
        let mut now = Instant::now();
        for _ in 0..5 {
            b.on_failure(&p, Admission::Normal, now);
        }
        for expected_ms in [200, 400, 400] {
            now += Duration::from_millis(1000);
            assert_eq!(b.dispatch(now), Admission::Probe);
            b.on_failure(&p, Admission::Probe, now);
            let open_until = Duration::from_millis(expected_ms);
            assert!(!b.admits(now + open_until - Duration::from_millis(1)));
            assert!(b.admits(now + open_until));
        }
        // A successful probe resets the cool-down to the first one.
        now += Duration::from_millis(1000);
        assert_eq!(b.dispatch(now), Admission::Probe);
        b.on_success(&p, Admission::Probe);
        for _ in 0..5 {
            b.on_failure(&p, Admission::Normal, now);
        }
        assert!(b.admits(now + Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn failure_ratio_opens_a_flaky_model() {
        let p = policy();
        let mut b = CircuitBreaker::new(&p);
        let now = Instant::now();
        // Alternating: never 5 in a row, but half of the window fails.
        for i in 0..9 {
            if i % 2 == 1 {
                b.on_failure(&p, Admission::Normal, now);
            } else {
                b.on_success(&p, Admission::Normal);
            }
        }
        assert_eq!(b.state(now), CircuitState::Closed, "below min_calls");
        b.on_success(&p, Admission::Normal);
        assert_eq!(b.state(now), CircuitState::Closed, "4 of 10 failed");
        b.on_failure(&p, Admission::Normal, now);
        assert_eq!(b.state(now), CircuitState::Closed, "5 of 11 failed");
        b.on_failure(&p, Admission::Normal, now);
        assert_eq!(b.state(now), CircuitState::Open, "6 of 12 failed");
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_probe_reopens() {
        let p = policy();
        let mut b = CircuitBreaker::new(&p);
        let now = Instant::now();
        for _ in 0..5 {
            b.on_failure(&p, Admission::Normal, now);
        }
        let later = now + p.cool_down;
        assert_eq!(b.dispatch(later), Admission::Probe);
        b.on_abandon(Admission::Probe, later);
        assert_eq!(b.state(later), CircuitState::Open);
        assert!(b.admits(later + p.cool_down));
    }

    #[tokio::test(start_paused = true)]
    async fn budget_refills_with_time() {
        let now = Instant::now();
        let mut budget = RetryBudget::new(0.25, 2.0, 10.0, now);
        assert!(budget.try_withdraw(now));
        assert!(budget.try_withdraw(now));
        assert!(!budget.try_withdraw(now), "two tokens to start");
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(budget.try_withdraw(now), "four tasks deposit one token");
        assert!(!budget.try_withdraw(now));
        assert!(budget.try_withdraw(now + Duration::from_millis(500)));
    }

    proptest! {
        #[test]
        fn retries_never_exceed_the_budget(
            ops in prop::collection::vec((any::<bool>(), 0u64..50), 1..400),
            ratio in 0.0f64..0.5,
            per_sec in 0.0f64..20.0,
        ) {
            let start = Instant::now();
            let mut budget = RetryBudget::new(ratio, per_sec, 50.0, start);
            let mut now = start;
            let (mut deposits, mut retries) = (0u32, 0u32);
            for (deposit, step_ms) in ops {
                now += Duration::from_millis(step_ms);
                if deposit {
                    budget.deposit();
                    deposits += 1;
                } else if budget.try_withdraw(now) {
                    retries += 1;
                }
            }
            let elapsed = (now - start).as_secs_f64();
            let bound = per_sec.min(50.0) + ratio * f64::from(deposits) + per_sec * elapsed;
            prop_assert!(f64::from(retries) <= bound + 1e-9, "{retries} > {bound}");
        }
    }
}
