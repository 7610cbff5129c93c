//! Criterion benches of the events subsystem: routing one subject against 64 wildcard patterns, trie walk against testing each pattern in turn.
//!
//! Naming (read by the harness): group = scenario id, function = subject. The subjects and
//! patterns follow the `events/fanout/*` load scenarios: 10,000 subjects
//! `ide.<kind>.<module>.<file>` and 64 patterns mixing `*` and `>`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use perflab_scenarios::routing_workload;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rust_ai_ide_events::{Pattern, PatternTrie};

/// The load scenarios' subjects and patterns, the subjects in a seeded random order so
/// that neither side benefits from locality.
fn workload() -> (Vec<String>, Vec<Pattern>) {
    let (mut subjects, patterns) = routing_workload();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x726f_7574_655f_3634);
    for i in (1..subjects.len()).rev() {
        subjects.swap(i, rng.random_range(0..=i));
    }
    (subjects, patterns)
}

fn route(c: &mut Criterion) {
    let (subjects, patterns) = workload();
    let mut trie = PatternTrie::new();
    for (i, p) in patterns.iter().enumerate() {
        trie.insert(p, i as u32);
    }
    let mut group = c.benchmark_group("events/route/patterns64");
    let mut out = Vec::with_capacity(64);
    let mut i = 0;
    group.bench_function("perflab", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            out.clear();
            trie.matches(black_box(&subjects[i]), &mut out)
                .expect("valid subject");
            black_box(out.len())
        });
    });
    let mut i = 0;
    group.bench_function("linear", |b| {
        b.iter(|| {
            i = (i + 1) % subjects.len();
            out.clear();
            let s = black_box(&subjects[i]);
            out.extend((0..patterns.len() as u32).filter(|&p| patterns[p as usize].matches(s)));
            black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
