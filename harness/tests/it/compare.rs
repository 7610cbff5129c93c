//! Integration tests of comparisons: seeded runs in a temp history, verdicts, the CLI.

use std::path::Path;

use crate::{median, normal, perflab, runner};
use perflab::{
    AnalyzeOptions, BenchmarkingFramework, ComparisonError, Direction, FrameworkConfig, GitInfo,
    HistoricalDatabase, Measurement, Run, RunnerInfo, ThresholdSource, Verdict, analyze_file,
    new_run_id,
};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use time::{Duration, OffsetDateTime};

const NOISE: f64 = 0.02;
const SAMPLES: usize = 30;
const HISTORY_RUNS: usize = 10;

fn wall_time(rng: &mut Xoshiro256PlusPlus, scenario: &str, center: f64) -> Measurement {
    let samples: Vec<f64> = (0..SAMPLES)
        .map(|_| center * (1.0 + NOISE * normal(rng)))
        .collect();
    Measurement {
        scenario: scenario.into(),
        subject: "perflab".into(),
        metric: "wall_time".into(),
        unit: "ns".into(),
        direction: Direction::Lower,
        value: median(&samples),
        lower: None,
        upper: None,
        samples,
    }
}

fn instructions(value: f64) -> Measurement {
    Measurement {
        scenario: "memory/c_ir/kib1".into(),
        subject: "perflab".into(),
        metric: "instructions".into(),
        unit: "instructions".into(),
        direction: Direction::Lower,
        value,
        lower: None,
        upper: None,
        samples: vec![value],
    }
}

/// Run number `i` (ids and timestamps increase with `i`) on runner `cpu`: wall time of
/// `memory/a` at `a`, of `memory/b` at 50, and instructions at `ir`.
pub(crate) fn make_run(rng: &mut Xoshiro256PlusPlus, i: i64, cpu: &str, a: f64, ir: f64) -> Run {
    let mut run = Run::new("memory", runner(cpu), GitInfo::default());
    let t = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap() + Duration::minutes(i);
    run.timestamp = t;
    run.id = new_run_id(t);
    run.results = vec![
        wall_time(rng, "memory/a", a),
        wall_time(rng, "memory/b", 50.0),
        instructions(ir),
    ];
    run
}

/// A history of `HISTORY_RUNS` steady runs on runner `cpu`; returns them, oldest first.
fn steady_history(db: &HistoricalDatabase, rng: &mut Xoshiro256PlusPlus, cpu: &str) -> Vec<Run> {
    (0..HISTORY_RUNS as i64)
        .map(|i| {
            let run = make_run(rng, i, cpu, 100.0, 1_000_000.0);
            db.append(&run).unwrap();
            run
        })
        .collect()
}

pub(crate) fn framework(history: &Path) -> BenchmarkingFramework {
    let mut config = FrameworkConfig::new(history);
    config.history_dir = history.to_owned();
    BenchmarkingFramework::new(config)
}

#[test]
fn injected_regressions_are_found_and_ordered_by_severity() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let history = steady_history(&db, &mut rng, "cpu-a");
    // Head: +15% wall time on memory/a (2% noise), memory/b from the same distribution,
    // +1% instructions.
    let head = make_run(&mut rng, 100, "cpu-a", 115.0, 1_010_000.0);
    db.append(&head).unwrap();
    let fw = framework(dir.path());
    let c = fw.compare_runs_blocking(&head, None).unwrap();
    let base = history.last().unwrap();
    assert_eq!(c.baseline_run_id.as_deref(), Some(base.id.as_str()));
    assert_eq!(c.entries.len(), 3);

    let a = c.entry("memory/a", "perflab", "wall_time").unwrap();
    assert_eq!(a.verdict, Verdict::Regression, "{a:?}");
    let ev = &a.evidence;
    assert!(ev.p_adjusted.unwrap() < 0.05, "{ev:?}");
    let change = ev.relative_change.unwrap();
    assert!((change - 0.15).abs() < 0.03, "{ev:?}");
    assert!(ev.ci_low.unwrap() <= change && change <= ev.ci_high.unwrap());
    // Learned from the 9 deltas between the 10 earlier runs of this runner.
    match ev.threshold.source {
        ThresholdSource::Floor { deltas, .. } | ThresholdSource::History { deltas } => {
            assert_eq!(deltas, 9);
        }
        ThresholdSource::Fallback { .. } => panic!("{:?}", ev.threshold),
    }
    assert!(ev.threshold.relative >= 0.02 && ev.threshold.relative < 0.15);

    let b = c.entry("memory/b", "perflab", "wall_time").unwrap();
    assert_eq!(b.verdict, Verdict::Unchanged, "{b:?}");
    assert!(b.evidence.p_adjusted.is_some());

    let ir = c
        .entry("memory/c_ir/kib1", "perflab", "instructions")
        .unwrap();
    assert_eq!(ir.verdict, Verdict::Regression, "{ir:?}");
    assert_eq!(ir.evidence.threshold.relative, 0.001);
    assert!((ir.evidence.relative_change.unwrap() - 0.01).abs() < 1e-12);

    let regs = fw.detect_regressions(&c);
    let names: Vec<&str> = regs.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(names, ["memory/a", "memory/c_ir/kib1"]);
    assert!(regs[0].p_adjusted.unwrap() < 0.05);
    assert!(regs[0].ci_low.is_some() && regs[1].ci_low.is_none());
    assert_eq!(regs[1].unit, "instructions");
}

#[test]
fn an_identical_distribution_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    steady_history(&db, &mut rng, "cpu-a");
    let head = make_run(&mut rng, 100, "cpu-a", 100.0, 1_000_000.0);
    let c = framework(dir.path())
        .compare_runs_blocking(&head, None)
        .unwrap();
    assert!(
        c.entries.iter().all(|e| e.verdict == Verdict::Unchanged),
        "{}",
        c.render_table()
    );
    assert!(c.regressions().is_empty());
}

#[test]
fn a_base_from_another_runner_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let base = make_run(&mut rng, 0, "cpu-a", 100.0, 1.0);
    let head = make_run(&mut rng, 1, "cpu-b", 100.0, 1.0);
    let e = framework(dir.path())
        .compare_runs_blocking(&head, Some(&base))
        .unwrap_err();
    assert!(matches!(e, ComparisonError::FingerprintMismatch { .. }));
    let msg = e.to_string();
    assert!(msg.contains(&base.runner.fingerprint), "{msg}");
    assert!(msg.contains(&head.runner.fingerprint), "{msg}");
    assert_ne!(base.runner.fingerprint, head.runner.fingerprint);
}

#[test]
fn mixed_units_and_one_sided_keys_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let base = make_run(&mut rng, 0, "cpu-a", 100.0, 1.0);
    let mut head = make_run(&mut rng, 1, "cpu-a", 100.0, 1.0);
    head.results[0].unit = "us".into();
    head.results.remove(1);
    let c = framework(dir.path())
        .compare_runs_blocking(&head, Some(&base))
        .unwrap();
    let a = c.entry("memory/a", "perflab", "wall_time").unwrap();
    assert_eq!(a.verdict, Verdict::Skipped);
    assert_eq!(a.evidence.reason, "mixed units: base `ns`, head `us`");
    let b = c.entry("memory/b", "perflab", "wall_time").unwrap();
    assert_eq!(b.verdict, Verdict::Skipped);
    assert!(b.evidence.reason.contains("only in base"), "{b:?}");
    assert_eq!(c.missing.len(), 1);
}

#[tokio::test]
async fn the_latest_earlier_run_of_the_same_runner_is_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let same = make_run(&mut rng, 0, "cpu-a", 100.0, 1.0);
    let other = make_run(&mut rng, 1, "cpu-b", 100.0, 1.0);
    let head = make_run(&mut rng, 2, "cpu-a", 100.0, 1.0);
    for r in [&same, &other, &head] {
        db.append(r).unwrap();
    }
    let fw = framework(dir.path());
    let c = fw.compare_with_historical(&head).await.unwrap();
    assert_eq!(c.baseline_run_id.as_deref(), Some(same.id.as_str()));
    let first = fw.compare_with_historical(&same).await.unwrap();
    assert_eq!(first.baseline_run_id, None);
    assert!(first.entries.iter().all(|e| e.verdict == Verdict::Skipped));
}

/// For the CLI tests: steady runs on `cpu-a`, a 15% slower head after them, and one run of
/// another runner, `cpu-b`.
fn cli_history(seed: u64) -> (tempfile::TempDir, HistoricalDatabase, Vec<Run>, Run, Run) {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path().join("h"));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let history = steady_history(&db, &mut rng, "cpu-a");
    let head = make_run(&mut rng, 100, "cpu-a", 115.0, 1_000_000.0);
    db.append(&head).unwrap();
    let foreign = make_run(&mut rng, 101, "cpu-b", 100.0, 1_000_000.0);
    db.append(&foreign).unwrap();
    (dir, db, history, head, foreign)
}

#[test]
fn cli_compare_prints_a_table_by_severity_and_json() {
    let (dir, db, history, head, foreign) = cli_history(3);
    let h = db.dir().to_str().unwrap();
    let ws = dir.path().to_str().unwrap();
    let base = &history.last().unwrap().id;

    let out = perflab(&[
        "--workspace",
        ws,
        "--history",
        h,
        "compare",
        "--base",
        base,
        "--head",
        &head.id[..head.id.len() - 2],
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(
        rows[0].contains(base.as_str()) && rows[0].contains(&head.id),
        "{stdout}"
    );
    assert!(rows[1].starts_with("verdict"), "{stdout}");
    assert!(
        rows[2].starts_with("regression") && rows[2].contains("memory/a"),
        "{stdout}"
    );
    assert!(rows[3].starts_with("unchanged"), "{stdout}");
    assert!(stdout.contains("1 regression(s), 0 improvement(s), 0 noisy, 2 unchanged"));

    let out = perflab(&[
        "--history",
        h,
        "compare",
        "--base",
        base,
        "--head",
        &head.id,
        "--json",
    ]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["head"], head.id.as_str());
    let regs = json["regressions"].as_array().unwrap();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0]["scenario"], "memory/a");
    assert!(regs[0]["p_adjusted"].as_f64().unwrap() < 0.05);
    assert_eq!(json["entries"][0]["verdict"], "regression");
    assert_eq!(json["entries"].as_array().unwrap().len(), 3);

    let out = perflab(&[
        "--history",
        h,
        "compare",
        "--base",
        base,
        "--head",
        &foreign.id,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&head.runner.fingerprint) && stderr.contains(&foreign.runner.fingerprint),
        "{stderr}"
    );
    let out = perflab(&[
        "--history",
        h,
        "compare",
        "--base",
        "1999",
        "--head",
        &head.id,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`1999` is neither a run of the history")
            && stderr.contains("nor a baseline"),
        "{stderr}"
    );
}

#[test]
fn cli_baselines_are_saved_listed_compared_and_refused_for_other_runners() {
    let (dir, db, history, head, foreign) = cli_history(5);
    let h = db.dir().to_str().unwrap();
    let ws = dir.path().to_str().unwrap();
    let cli = |args: &[&str]| {
        let out = perflab(&[&["--workspace", ws, "--history", h], args].concat());
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };

    let base = &history.last().unwrap().id;
    let (ok, text) = cli(&["baseline", "save", "main", "--run", base]);
    assert!(ok, "{text}");
    let file = dir
        .path()
        .join("baselines")
        .join(&head.runner.fingerprint)
        .join("main.json");
    let saved: Run = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(&saved.id, base);
    // Without --run, the latest run of the history is saved.
    let (ok, text) = cli(&["baseline", "save", "other"]);
    assert!(ok && text.contains(&foreign.id), "{text}");

    let (ok, text) = cli(&["baseline", "list", "--json"]);
    assert!(ok, "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["fingerprint"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
            )
        })
        .collect();
    let mut expected = vec![
        (head.runner.fingerprint.as_str(), "main"),
        (foreign.runner.fingerprint.as_str(), "other"),
    ];
    expected.sort();
    assert_eq!(names, expected);

    // A baseline name works as the base of a comparison.
    let (ok, text) = cli(&["compare", "--base", "main", "--head", &head.id]);
    assert!(ok, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("regression") && l.contains("memory/a")),
        "{text}"
    );
    // One of another runner is refused, naming both runners.
    let (ok, text) = cli(&["compare", "--base", "other", "--head", &head.id]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&head.runner.fingerprint) && text.contains(&foreign.runner.fingerprint),
        "{text}"
    );
}

#[test]
fn cli_baseline_show_and_delete_act_on_this_runner() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path().join("h"));
    let mut run = Run::new(
        "memory",
        RunnerInfo::detect(None).unwrap(),
        GitInfo::default(),
    );
    run.results = vec![instructions(1_000.0)];
    db.append(&run).unwrap();
    let h = db.dir().to_str().unwrap();
    let ws = dir.path().to_str().unwrap();
    let cli = |args: &[&str]| perflab(&[&["--workspace", ws, "--history", h], args].concat());

    assert!(cli(&["baseline", "save", "main"]).status.success());
    let out = cli(&["baseline", "show", "main", "--json"]);
    assert!(out.status.success());
    let shown: Run = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, run);

    assert!(cli(&["baseline", "delete", "main"]).status.success());
    let out = cli(&["baseline", "show", "main"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no baseline `main`"));
    assert!(!cli(&["baseline", "save", "../escape"]).status.success());
}

// ---------------------------------------------------------------- change points over history

/// 30 runs on runner `cpu` with commits: `memory/a` steps 100 -> 115 at run 20, `memory/b`
/// stays at 50, instructions step by 1% at run 15. Returns the runs, oldest first.
pub(crate) fn stepped_history(
    db: &HistoricalDatabase,
    rng: &mut Xoshiro256PlusPlus,
    cpu: &str,
) -> Vec<Run> {
    (0..30_i64)
        .map(|i| {
            let a = if i < 20 { 100.0 } else { 115.0 };
            let ir = if i < 15 { 1_000_000.0 } else { 1_010_000.0 };
            let mut run = make_run(rng, i, cpu, a, ir);
            run.git.commit = Some(format!("{i:040x}"));
            db.append(&run).unwrap();
            run
        })
        .collect()
}

#[test]
fn comparisons_report_change_points_with_their_run_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(21);
    let runs = stepped_history(&db, &mut rng, "cpu");
    let mut head = make_run(&mut rng, 30, "cpu", 115.0, 1_010_000.0);
    head.git.commit = Some("f".repeat(40));
    let c = framework(dir.path())
        .compare_runs_blocking(&head, None)
        .unwrap();
    let changes: Vec<(&str, &str, f64)> = c
        .change_points
        .iter()
        .map(|p| {
            (
                p.key.scenario.as_str(),
                p.change.run_id.as_deref().unwrap(),
                p.change.change.relative_change.unwrap(),
            )
        })
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].0, "memory/a");
    assert_eq!(changes[0].1, runs[20].id);
    assert!((changes[0].2 - 0.15).abs() < 0.02, "{changes:?}");
    assert_eq!(changes[1].0, "memory/c_ir/kib1");
    assert_eq!(changes[1].1, runs[15].id);
    assert!((changes[1].2 - 0.01).abs() < 1e-9, "{changes:?}");
    let a = &c.change_points[0];
    assert_eq!(a.n, 31, "the history and the head");
    assert_eq!(a.change.change.index, 20);
    assert_eq!(
        a.change.commit.as_deref(),
        Some(format!("{:040x}", 20).as_str())
    );
    let table = c.render_table();
    assert!(
        table.contains("change points in this runner's history (2)")
            && table.contains(&format!(
                "memory/a perflab wall_time: from run {}",
                runs[20].id
            )),
        "{table}"
    );
}

#[test]
fn a_steady_history_has_no_change_points() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(22);
    steady_history(&db, &mut rng, "cpu");
    let head = make_run(&mut rng, 99, "cpu", 100.0, 1_000_000.0);
    let c = framework(dir.path())
        .compare_runs_blocking(&head, None)
        .unwrap();
    assert!(c.change_points.is_empty(), "{:?}", c.change_points);
    assert!(!c.render_table().contains("change points"));
}

#[test]
fn analyze_reads_the_history_folder_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(23);
    let runs = stepped_history(&db, &mut rng, "cpu");
    let report = analyze_file(dir.path(), &AnalyzeOptions::default()).unwrap();
    let names: Vec<&str> = report.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "memory/a perflab wall_time",
            "memory/b perflab wall_time",
            "memory/c_ir/kib1 perflab instructions"
        ]
    );
    let a = &report.series[0];
    assert_eq!(a.n, 30);
    assert_eq!(a.change_points.len(), 1, "{a:?}");
    assert_eq!(a.change_points[0].change.index, 20);
    assert_eq!(
        a.change_points[0].run_id.as_deref(),
        Some(runs[20].id.as_str())
    );
    assert!(report.series[1].change_points.is_empty());
    assert_eq!(report.series[2].change_points[0].change.index, 15);

    // One history file: a point per key, nothing to find, no error.
    let one = analyze_file(&db.path_of(&runs[0].id), &AnalyzeOptions::default()).unwrap();
    assert_eq!(one.series.len(), 3);
    assert!(
        one.series
            .iter()
            .all(|s| s.n == 1 && s.change_points.is_empty())
    );

    // A second runner: its series are apart, and named with their runner.
    let other = make_run(&mut rng, 40, "other cpu", 100.0, 1.0);
    db.append(&other).unwrap();
    let both = analyze_file(dir.path(), &AnalyzeOptions::default()).unwrap();
    assert_eq!(both.series.len(), 6);
    assert!(both.series.iter().any(|s| s.name
        == format!("memory/a perflab wall_time @ {}", other.runner.fingerprint)
        && s.n == 1));

    // The CLI, as JSON: indices, segment means, and the run and commit of each change.
    let out = perflab(&["analyze", "--input", dir.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &json["series"][0];
    assert_eq!(first["change_points"][0]["index"], 20);
    assert_eq!(first["change_points"][0]["run_id"], runs[20].id.as_str());
    assert_eq!(
        first["change_points"][0]["commit"],
        format!("{:040x}", 20).as_str()
    );
    assert_eq!(first["segments"].as_array().unwrap().len(), 2);

    // An empty history folder is a clear error.
    let empty = tempfile::tempdir().unwrap();
    let e = analyze_file(empty.path(), &AnalyzeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no data rows"), "{e}");
}
