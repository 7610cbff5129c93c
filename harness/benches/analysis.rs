//! The harness's own benchmarks: comparing a run with a 1,000,000-row history, and `analyze`
//! on a 100,000-point series (suite `harness`, scenarios `harness/*`).

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use perflab::{
    AnalyzeOptions, BenchmarkingFramework, FrameworkConfig, GitInfo, HistoricalDatabase,
    Measurement, MetricSpec, Run, RunnerFacts, RunnerInfo, analyze_file, new_run_id,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng};
use time::OffsetDateTime;

/// Scenario-metrics per run and runs in the history: 1,000 x 1,000 rows.
const KEYS: usize = 1_000;
const RUNS: usize = 1_000;
/// Raw samples per measurement, as a short criterion run would give.
const SAMPLES: usize = 10;
/// Points of the `analyze` series.
const POINTS: usize = 100_000;

fn runner() -> RunnerInfo {
    RunnerInfo::from_facts(RunnerFacts {
        cpu_model: "Synthetic CPU".into(),
        cpu_cores: 2,
        memory_gib: 24,
        os: "Linux".into(),
        kernel: "6.8".into(),
        rustc: "rustc 1.95.0".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        gpu: None,
    })
}

/// A run `index` hours after a fixed start: every key with 3% noise, and a 10% step at
/// run 700 in every tenth key, so the change-point pass has real work.
fn synthetic_run(index: usize, rng: &mut Xoshiro256PlusPlus) -> Run {
    let mut run = Run::new(
        "synthetic",
        runner(),
        GitInfo {
            commit: Some(format!("{index:040x}")),
            branch: Some("main".into()),
        },
    );
    run.timestamp =
        OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 3_600 * index as u64);
    run.id = new_run_id(run.timestamp);
    let spec = MetricSpec::known("wall_time").expect("wall_time is a known metric");
    for key in 0..KEYS {
        let level = if key % 10 == 0 && index >= 700 {
            1.1
        } else {
            1.0
        };
        let samples: Vec<f64> = (0..SAMPLES)
            .map(|_| 1_000.0 * level * (1.0 + 0.03 * gaussian(rng)))
            .collect();
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        run.results.push(Measurement {
            scenario: format!("synthetic/key/k{key:04}"),
            subject: "perflab".into(),
            metric: "wall_time".into(),
            unit: spec.unit.into(),
            direction: spec.direction,
            value: sorted[SAMPLES / 2],
            lower: Some(sorted[0]),
            upper: Some(sorted[SAMPLES - 1]),
            samples,
        });
    }
    run
}

/// A standard normal variate (Box-Muller).
fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Writes `RUNS` runs to a history in `dir` and returns the head run (not stored).
fn write_history(dir: &Path) -> Run {
    let db = HistoricalDatabase::new(dir);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    for index in 0..RUNS {
        db.append(&synthetic_run(index, &mut rng))
            .expect("writing the synthetic history");
    }
    synthetic_run(RUNS, &mut rng)
}

fn compare_with_historical(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let head = write_history(dir.path());
    let mut config = FrameworkConfig::new(dir.path());
    config.history_dir = dir.path().to_path_buf();
    let framework = BenchmarkingFramework::new(config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("harness/compare_with_historical/rows1m");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("perflab", |b| {
        b.iter(|| {
            rt.block_on(framework.compare_with_historical(&head))
                .expect("comparing with the history")
        });
    });
    group.finish();
}

fn analyze(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("series.csv");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let mut csv = String::from("value\n");
    for i in 0..POINTS {
        // Three steps and 3% noise with a 1% chance of a 5x outlier.
        let level = match i {
            0..25_000 => 100.0,
            25_000..50_000 => 110.0,
            50_000..75_000 => 104.0,
            _ => 120.0,
        };
        let outlier = if rng.random_range(0.0..1.0) < 0.01 {
            5.0
        } else {
            1.0
        };
        csv.push_str(&format!(
            "{}\n",
            level * outlier * (1.0 + 0.03 * gaussian(&mut rng))
        ));
    }
    std::fs::write(&path, csv).expect("writing the series");
    let options = AnalyzeOptions::default();
    let mut group = c.benchmark_group("harness/analyze/points100k");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    group.bench_function("perflab", |b| {
        b.iter(|| analyze_file(&path, &options).expect("analyzing the series"));
    });
    group.finish();
}

criterion_group!(benches, compare_with_historical, analyze);
criterion_main!(benches);
