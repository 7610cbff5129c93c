//! Integration tests of the work-stealing scheduler, one binary.

mod basics;
mod numa;
mod priority;
mod shutdown;
mod stress;

use rust_ai_ide_scheduler::{SchedulerConfig, WorkStealingScheduler};

/// A scheduler with `n` workers.
pub(crate) fn scheduler(n: usize) -> WorkStealingScheduler {
    WorkStealingScheduler::new(SchedulerConfig::with_workers(n)).expect("scheduler starts")
}

/// splitmix64: a seeded generator for the stress tests (no `rand` dependency here).
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
