//! Integration tests of the statistics: A/A and injected-regression simulations, change points, analyze.

use std::fs;
use std::path::Path;

use crate::{median, normal, perflab};
use perflab::{
    AbSamples, ChangePointConfig, Direction, MetricKind, StatsError, Verdict, VerdictConfig,
    ab_verdicts, detect_change_points, noise_threshold,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

// ---------------------------------------------------------------- simulation helpers

const RUNS: usize = 500;
const SCENARIOS: usize = 20;
const NOISE: f64 = 0.03;
const HISTORY_RUNS: usize = 15;

fn seeded(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Timing-like samples: `center` with relative Gaussian noise, and now and then (2%) a
/// sample slowed (for lower-is-better) or cut (higher-is-better) by 20-100%, as a busy machine does.
fn timing_samples(
    rng: &mut Xoshiro256PlusPlus,
    center: f64,
    noise: f64,
    n: usize,
    direction: Direction,
) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let v = center * (1.0 + noise * normal(rng));
            if rng.random::<f64>() < 0.02 {
                let hit = rng.random_range(0.2..1.0);
                match direction {
                    Direction::Lower => v * (1.0 + hit),
                    Direction::Higher => v / (1.0 + hit),
                }
            } else {
                v
            }
        })
        .collect()
}

/// One simulated suite run against its base: `SCENARIOS` scenario-metrics, even ones
/// lower-is-better (wall time), odd ones higher-is-better (throughput); `injected` of them
/// get 10% worse. Thresholds are learned from `HISTORY_RUNS` earlier runs' medians.
fn simulate_wall_time_run(rng: &mut Xoshiro256PlusPlus, injected: &[usize]) -> Vec<AbSamples> {
    let n_base = rng.random_range(10..=30);
    let n_head = rng.random_range(10..=30);
    (0..SCENARIOS)
        .map(|s| {
            let direction = if s % 2 == 0 {
                Direction::Lower
            } else {
                Direction::Higher
            };
            let center = 1000.0 * (1.0 + s as f64);
            let history: Vec<f64> = (0..HISTORY_RUNS)
                .map(|_| median(&timing_samples(rng, center, NOISE, 20, direction)))
                .collect();
            let head_center = match (injected.contains(&s), direction) {
                (false, _) => center,
                (true, Direction::Lower) => center * 1.10,
                (true, Direction::Higher) => center * 0.90,
            };
            AbSamples {
                name: format!("sim/scenario/{s}"),
                direction,
                base: timing_samples(rng, center, NOISE, n_base, direction),
                head: timing_samples(rng, head_center, NOISE, n_head, direction),
                threshold: noise_threshold(&history, MetricKind::Time),
            }
        })
        .collect()
}

// ---------------------------------------------------------------- A/A and injected regressions

#[test]
fn aa_runs_rarely_report_a_false_regression() {
    let mut rng = seeded(0xA_A);
    let config = VerdictConfig::default();
    let (mut runs_with_false, mut runs_with_false_improvement, mut runs_bh_significant) = (0, 0, 0);
    let mut counts = [0usize; 5];
    let mut thresholds = Vec::new();
    for _ in 0..RUNS {
        let family = simulate_wall_time_run(&mut rng, &[]);
        thresholds.extend(family.iter().map(|f| f.threshold.relative));
        let verdicts = ab_verdicts(&family, &config);
        for v in &verdicts {
            counts[v.verdict as usize] += 1;
        }
        runs_with_false += usize::from(verdicts.iter().any(|v| v.verdict == Verdict::Regression));
        runs_with_false_improvement +=
            usize::from(verdicts.iter().any(|v| v.verdict == Verdict::Improvement));
        runs_bh_significant += usize::from(
            verdicts
                .iter()
                .any(|v| v.evidence.p_adjusted.is_some_and(|q| q < config.fdr)),
        );
    }
    let rate = runs_with_false as f64 / RUNS as f64;
    eprintln!(
        "A/A: {RUNS} runs x {SCENARIOS} scenario-metrics at {:.0}% noise: runs with a false regression {runs_with_false} ({:.1}%), with a false improvement {runs_with_false_improvement}, with any BH-significant difference (before the threshold) {runs_bh_significant} ({:.1}%); verdicts regression/improvement/unchanged/noisy/skipped = {counts:?}; learned thresholds median {:.2}% max {:.2}%",
        NOISE * 100.0,
        rate * 100.0,
        runs_bh_significant as f64 / RUNS as f64 * 100.0,
        median(&thresholds) * 100.0,
        thresholds.iter().copied().fold(0.0, f64::max) * 100.0,
    );
    assert!(rate <= 0.05, "false regression rate {rate}");
    assert!(runs_with_false_improvement as f64 / RUNS as f64 <= 0.05);
    // BH alone (without the threshold) also keeps to its level under the complete null.
    assert!(runs_bh_significant as f64 / RUNS as f64 <= 0.08);
    assert_eq!(counts[Verdict::Skipped as usize], 0);
}

#[test]
fn injected_ten_percent_regressions_are_found() {
    let mut rng = seeded(0x10);
    let config = VerdictConfig::default();
    let (mut injected_total, mut found, mut runs_with_false) = (0, 0, 0);
    for _ in 0..RUNS {
        let k = rng.random_range(1..=3);
        let mut injected = Vec::new();
        while injected.len() < k {
            let s = rng.random_range(0..SCENARIOS);
            if !injected.contains(&s) {
                injected.push(s);
            }
        }
        let family = simulate_wall_time_run(&mut rng, &injected);
        let verdicts = ab_verdicts(&family, &config);
        injected_total += injected.len();
        found += injected
            .iter()
            .filter(|&&s| verdicts[s].verdict == Verdict::Regression)
            .count();
        runs_with_false += usize::from(
            verdicts
                .iter()
                .enumerate()
                .any(|(s, v)| v.verdict == Verdict::Regression && !injected.contains(&s)),
        );
    }
    let rate = found as f64 / injected_total as f64;
    eprintln!(
        "injected: {injected_total} regressions of 10% (half wall time, half throughput) in {RUNS} runs at {:.0}% noise: found {found} ({:.1}%); runs with a false regression elsewhere {runs_with_false} ({:.1}%)",
        NOISE * 100.0,
        rate * 100.0,
        runs_with_false as f64 / RUNS as f64 * 100.0
    );
    assert!(rate >= 0.95, "detection rate {rate}");
    assert!(runs_with_false as f64 / RUNS as f64 <= 0.05);
}

#[test]
fn instruction_counts_one_percent_always_found_never_false() {
    const NOISE_IR: f64 = 0.000_05; // 0.005%: callgrind-like
    let mut rng = seeded(0x1C);
    let config = VerdictConfig::default();
    let (mut injected_total, mut found, mut false_regressions, mut false_other) = (0, 0, 0, 0);
    for _ in 0..RUNS {
        let bad = rng.random_range(0..SCENARIOS);
        let family: Vec<AbSamples> = (0..SCENARIOS)
            .map(|s| {
                let center = 1e6 * (1.0 + s as f64);
                let mut draw = |c: f64| (c * (1.0 + NOISE_IR * normal(&mut rng))).round();
                let history: Vec<f64> = (0..HISTORY_RUNS).map(|_| draw(center)).collect();
                let head = if s == bad { center * 1.01 } else { center };
                AbSamples {
                    name: format!("sim/ir/{s}"),
                    direction: Direction::Lower,
                    base: vec![draw(center)],
                    head: vec![draw(head)],
                    threshold: noise_threshold(&history, MetricKind::Instructions),
                }
            })
            .collect();
        let verdicts = ab_verdicts(&family, &config);
        injected_total += 1;
        found += usize::from(verdicts[bad].verdict == Verdict::Regression);
        for (s, v) in verdicts.iter().enumerate() {
            if s != bad {
                false_regressions += usize::from(v.verdict == Verdict::Regression);
                false_other += usize::from(v.verdict != Verdict::Unchanged);
            }
        }
    }
    eprintln!(
        "instruction counts ({:.3}% noise): 1% regressions found {found}/{injected_total}; false regressions {false_regressions}, other non-unchanged verdicts {false_other} among {} unchanged scenario-metrics",
        NOISE_IR * 100.0,
        RUNS * (SCENARIOS - 1)
    );
    assert_eq!(found, injected_total);
    assert_eq!(false_regressions, 0);
    assert_eq!(false_other, 0);
}

#[test]
fn malformed_members_do_not_disturb_the_family() {
    let mut rng = seeded(7);
    let mut family = simulate_wall_time_run(&mut rng, &[0]);
    family[1].head.clear();
    family[2].base[3] = f64::NAN;
    family[3].head = vec![f64::INFINITY];
    family[4].base.truncate(2);
    let verdicts = ab_verdicts(&family, &VerdictConfig::default());
    assert_eq!(
        verdicts[0].verdict,
        Verdict::Regression,
        "{:?}",
        verdicts[0]
    );
    assert_eq!(verdicts[1].verdict, Verdict::Skipped);
    assert_eq!(verdicts[2].verdict, Verdict::Noisy);
    assert_eq!(verdicts[3].verdict, Verdict::Noisy);
    assert_eq!(verdicts[4].verdict, Verdict::Noisy);
    assert!(
        verdicts[1..5]
            .iter()
            .all(|v| v.evidence.p_adjusted.is_none())
    );
    let json = serde_json::to_value(&verdicts[0]).unwrap();
    assert_eq!(json["verdict"], "regression");
    assert_eq!(json["evidence"]["threshold"]["source"], "history");
}

// ---------------------------------------------------------------- change points

/// `n` points around 100 with 3% Gaussian noise, a few large outliers, and `steps`
/// (index, relative level change) applied from that index on.
fn series(
    rng: &mut Xoshiro256PlusPlus,
    n: usize,
    steps: &[(usize, f64)],
    outliers: usize,
) -> Vec<f64> {
    let mut level = 100.0;
    let mut x: Vec<f64> = (0..n)
        .map(|i| {
            for &(at, rel) in steps {
                if at == i {
                    level *= 1.0 + rel;
                }
            }
            level * (1.0 + NOISE * normal(rng))
        })
        .collect();
    for _ in 0..outliers.min(n) {
        let i = rng.random_range(0..n);
        let factor = if rng.random::<bool>() {
            rng.random_range(1.3..3.0)
        } else {
            rng.random_range(0.3..0.7)
        };
        x[i] *= factor;
    }
    x
}

fn indices(x: &[f64]) -> Vec<usize> {
    detect_change_points(x, &ChangePointConfig::default())
        .unwrap()
        .change_points
        .iter()
        .map(|c| c.index)
        .collect()
}

#[test]
fn stationary_series_have_no_change_points() {
    let mut rng = seeded(0x57A7);
    let sizes = [2, 3, 7, 40, 50, 60, 80, 100, 150, 200, 500, 1000];
    let mut false_changes = 0;
    for seed in 0..1200 {
        let n = sizes[seed % sizes.len()];
        let x = series(&mut rng, n, &[], 1 + n / 50);
        let found = indices(&x);
        if !found.is_empty() {
            false_changes += 1;
            eprintln!("seed {seed} n {n}: false change points {found:?}");
        }
    }
    eprintln!(
        "stationary (3% noise, 1 + n/50 outliers of x0.3-0.7 or x1.3-3): {false_changes} of 1200 series of 2-1000 points reported a change"
    );
    assert_eq!(false_changes, 0);
}

#[test]
fn short_series_rarely_show_false_changes_and_keep_real_ones() {
    // 10-30 points: sigma is hard to estimate from so few differences, and a chance shift is
    // hard to tell from a step; both rates are measured, with bounds that hold them.
    let mut rng = seeded(0x5407);
    let (mut false_changes, mut found) = (0, 0);
    let runs = 2000;
    for seed in 0..runs {
        let n = 10 + seed % 21;
        false_changes += usize::from(!indices(&series(&mut rng, n, &[], 1)).is_empty());
        let n = 20 + seed % 21;
        let f = indices(&series(&mut rng, n, &[(n / 2, 0.10)], 1));
        found += usize::from(f.len() == 1 && f[0].abs_diff(n / 2) <= 3);
    }
    let (fa, hit) = (
        false_changes as f64 / runs as f64,
        found as f64 / runs as f64,
    );
    eprintln!(
        "short series: false changes in {false_changes}/{runs} stationary series of 10-30 points ({:.2}%); a 10% step in the middle of 20-40 points found in {found}/{runs} ({:.1}%)",
        fa * 100.0,
        hit * 100.0
    );
    assert!(fa <= 0.005, "{fa}");
    assert!(hit >= 0.90, "{hit}");
}

#[test]
fn single_steps_are_found_near_the_truth() {
    let mut rng = seeded(0x5_1E9);
    let mut worst = 0;
    for seed in 0..200 {
        let n = 200;
        let at = rng.random_range(20..180);
        let rel = if seed % 2 == 0 { 0.10 } else { -0.10 };
        let x = series(&mut rng, n, &[(at, rel)], 3);
        let found = indices(&x);
        assert_eq!(found.len(), 1, "seed {seed}: step at {at}, found {found:?}");
        let err = found[0].abs_diff(at);
        worst = worst.max(err);
        assert!(err <= 3, "seed {seed}: step at {at}, found {found:?}");
    }
    eprintln!("single 10% steps at 3% noise: 200/200 found, worst position error {worst}");
}

#[test]
fn multiple_steps_are_found_near_the_truth() {
    let mut rng = seeded(0x3_57E9);
    let truth = [(80, 0.10), (200, -0.15), (310, 0.10), (350, 0.20)];
    let mut worst = 0;
    for seed in 0..100 {
        let x = series(&mut rng, 400, &truth, 5);
        let seg = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        let found: Vec<usize> = seg.change_points.iter().map(|c| c.index).collect();
        assert_eq!(found.len(), truth.len(), "seed {seed}: found {found:?}");
        for (c, &(at, rel)) in seg.change_points.iter().zip(&truth) {
            worst = worst.max(c.index.abs_diff(at));
            assert!(c.index.abs_diff(at) <= 3, "seed {seed}: found {found:?}");
            // Segment means are of the raw observations, outliers included.
            let r = c.relative_change.unwrap();
            assert!(
                (r - rel).abs() < 0.08 && r.signum() == rel.signum(),
                "seed {seed}: {c:?}"
            );
        }
        assert_eq!(seg.segments.len(), truth.len() + 1);
        assert_eq!(seg.segments.last().unwrap().end, 400);
    }
    eprintln!(
        "four steps (10-20%) in 400 points at 3% noise: 100/100 series exact in count, worst position error {worst}"
    );
}

#[test]
fn long_series_are_handled() {
    let mut rng = seeded(0x100_000);
    let x = series(&mut rng, 100_000, &[(30_000, 0.05), (70_000, -0.05)], 100);
    let found = indices(&x);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].abs_diff(30_000) <= 10 && found[1].abs_diff(70_000) <= 10,
        "{found:?}"
    );
    let flat = series(&mut rng, 100_000, &[], 100);
    assert!(indices(&flat).is_empty());
}

#[test]
fn pathological_series_are_handled() {
    let mut rng = seeded(5);
    let mut level = 0.0;
    let walk: Vec<f64> = (0..20_000)
        .map(|_| {
            level += normal(&mut rng);
            level
        })
        .collect();
    let alternating: Vec<f64> = (0..1000).map(|i| f64::from(i % 2)).collect();
    let huge: Vec<f64> = (0..100)
        .map(|i| if i < 50 { 1e300 } else { -1e300 })
        .collect();
    for x in [walk, alternating, huge] {
        let seg = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        assert_eq!(seg.segments.first().unwrap().start, 0);
        assert_eq!(seg.segments.last().unwrap().end, x.len());
        assert!(
            seg.segments
                .windows(2)
                .all(|w| w[0].end == w[1].start && w[0].end - w[0].start >= 5)
        );
        assert_eq!(seg.change_points.len() + 1, seg.segments.len());
    }
}

#[test]
fn every_small_size_is_handled() {
    let mut rng = seeded(2);
    for n in 1..=40 {
        let x = series(&mut rng, n, &[(n / 2, 0.5)], 0);
        let seg = detect_change_points(&x, &ChangePointConfig::default()).unwrap();
        assert_eq!(seg.n, n);
        assert_eq!(seg.segments.first().unwrap().start, 0);
        assert_eq!(seg.segments.last().unwrap().end, n);
        // A change needs 5 points on each side.
        if n < 10 {
            assert!(seg.change_points.is_empty());
        }
        if n >= 12 {
            assert_eq!(indices(&x), vec![n / 2], "n {n}");
        }
    }
    assert!(matches!(
        detect_change_points(&[], &ChangePointConfig::default()),
        Err(StatsError::Empty { .. })
    ));
    assert!(matches!(
        detect_change_points(&[1.0, f64::NAN, 2.0], &ChangePointConfig::default()),
        Err(StatsError::NonFinite { index: 1, .. })
    ));
}

// ---------------------------------------------------------------- perflab analyze

/// Two series: `a` steps from 100 to 120 at index 30 of 60, `b` is flat (deterministic).
fn two_series() -> Vec<(&'static str, f64)> {
    let mut rows = Vec::new();
    for i in 0..60 {
        let wiggle = f64::from((i * 37) % 11) / 10.0 - 0.5;
        rows.push(("a", if i < 30 { 100.0 } else { 120.0 } + wiggle));
        rows.push(("b", 50.0 + wiggle));
    }
    rows
}

fn analyze_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["analyze", "--input", path.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = perflab(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check_two_series(v: &serde_json::Value) {
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{v}");
    assert_eq!(series[0]["name"], "a");
    assert_eq!(series[0]["n"], 60);
    let cps = series[0]["change_points"].as_array().unwrap();
    assert_eq!(cps.len(), 1, "{v}");
    assert_eq!(cps[0]["index"], 30);
    let before = cps[0]["before_mean"].as_f64().unwrap();
    let after = cps[0]["after_mean"].as_f64().unwrap();
    assert!(
        (before - 100.0).abs() < 0.5 && (after - 120.0).abs() < 0.5,
        "{v}"
    );
    assert!((cps[0]["relative_change"].as_f64().unwrap() - 0.2).abs() < 0.01);
    let segs = series[0]["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(
        (segs[0]["start"].as_u64(), segs[0]["end"].as_u64()),
        (Some(0), Some(30))
    );
    assert_eq!(series[1]["name"], "b");
    assert!(series[1]["change_points"].as_array().unwrap().is_empty());
}

#[test]
fn analyze_csv_groups_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series.csv");
    let mut csv = String::from("series,run,value\n");
    for (i, (s, v)) in two_series().into_iter().enumerate() {
        csv.push_str(&format!("{s},{i},{v}\n"));
    }
    fs::write(&path, csv).unwrap();
    check_two_series(&analyze_json(&path, &[]));

    // The table names the series and the change.
    let out = perflab(&["analyze", "--input", path.to_str().unwrap()]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("series `a`: 60 points, 1 change point\n"),
        "{table}"
    );
    assert!(
        table.contains("series `b`: 60 points, 0 change points\n"),
        "{table}"
    );
    assert!(table.contains("segment [30, 60)"), "{table}");

    // Without a series column (or naming another one) the whole file is one series.
    let single = analyze_json(&path, &["--series-column", "nothing", "--column", "run"]);
    assert_eq!(single["series"][0]["name"], "run");
    assert_eq!(single["series"][0]["n"], 120);
}

#[test]
fn analyze_ndjson_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let ndjson = dir.path().join("series.ndjson");
    let lines: String = two_series()
        .into_iter()
        .map(|(s, v)| format!("{{\"series\":\"{s}\",\"value\":{v}}}\n"))
        .collect();
    fs::write(&ndjson, lines).unwrap();
    check_two_series(&analyze_json(&ndjson, &[]));

    use polars::prelude::{Column, DataFrame, ParquetWriter};
    let rows = two_series();
    let mut df = DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "series".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new("value".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
        ],
    )
    .unwrap();
    let parquet = dir.path().join("series.parquet");
    ParquetWriter::new(fs::File::create(&parquet).unwrap())
        .finish(&mut df)
        .unwrap();
    check_two_series(&analyze_json(&parquet, &[]));
}

#[test]
fn analyze_errors_name_the_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        fs::write(&p, body).unwrap();
        p
    };
    let fail = |path: &Path, extra: &[&str]| -> String {
        let mut args = vec!["analyze", "--input", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = perflab(&args);
        assert!(!out.status.success(), "{path:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        err
    };
    let good = write("good.csv", "value\n1\n2\n3\n");
    assert!(fail(&good, &["--column", "nope"]).contains("no column `nope` (columns: value)"));
    let text = write("text.csv", "value,label\n1,x\n2,y\n");
    assert!(fail(&text, &["--column", "label"]).contains("column `label` is str, not numeric"));
    let nan = write("nan.csv", "value\n1\n2\nNaN\n4\n");
    assert!(fail(&nan, &[]).contains("column `value`: row 2 (0-based, header excluded) is NaN"));
    let inf = write("inf.csv", "value\n1\n-inf\n");
    assert!(fail(&inf, &[]).contains("row 1 (0-based, header excluded) is -inf"));
    let null = write("null.csv", "value\n1\n\n3\n");
    assert!(fail(&null, &[]).contains("column `value`: row 1 (0-based, header excluded) is null"));
    let json_null = write("null.ndjson", "{\"value\": 1}\n{\"value\": null}\n");
    assert!(fail(&json_null, &[]).contains("row 1 (0-based, header excluded) is null"));
    let json_bad = write("bad.jsonl", "{\"value\": 1}\n{\"value\": 1e999}\n");
    assert!(fail(&json_bad, &[]).contains("cannot parse as ndjson"));
    let series_null = write(
        "sn.ndjson",
        "{\"series\": \"a\", \"value\": 1}\n{\"series\": null, \"value\": 2}\n",
    );
    assert!(
        fail(&series_null, &[])
            .contains("column `series`: row 1 (0-based, header excluded) is null")
    );
    let empty = write("empty.csv", "");
    assert!(fail(&empty, &[]).contains("no data rows"));
    let header_only = write("header.csv", "value\n");
    assert!(fail(&header_only, &[]).contains("no data rows"));
    let unknown = write("series.txt", "value\n1\n");
    assert!(fail(&unknown, &[]).contains("unknown file type"));
    let missing = dir.path().join("missing.csv");
    assert!(fail(&missing, &[]).contains("cannot read"));
    let broken = write("broken.parquet", "not parquet at all");
    assert!(fail(&broken, &[]).contains("cannot parse as parquet"));

    // One point is not an error: one segment.
    let one = write("one.csv", "value\n5\n");
    let v = analyze_json(&one, &[]);
    assert_eq!(v["series"][0]["n"], 1);
    assert_eq!(v["series"][0]["segments"][0]["mean"], 5.0);
}
