//! Integration tests: ingest of real engine output, suites, the Parquet history, the run flow
//! with a fake command runner, and the `perflab` binary; comparisons and statistics in the
//! modules.

mod compare;
mod github;
mod gpu;
mod report;
mod stats;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};

use perflab::{
    BenchmarkSuite, BenchmarkingFramework, Capabilities, Catalog, CommandOutput, CommandPurpose,
    CommandSpec, Direction, Engine, FrameworkConfig, GitInfo, HistoricalDatabase, IngestError,
    Measurement, Run, RunnerFacts, RunnerInfo, StoreError, SuiteError, TargetStatus, Verdict,
    ingest_bmf, ingest_criterion, ingest_gungraun,
};
use rand::RngExt as _;
use rand::rngs::Xoshiro256PlusPlus;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn runner_info() -> RunnerInfo {
    runner("Test CPU")
}

/// A runner with this CPU model (and fixed other facts).
pub(crate) fn runner(cpu: &str) -> RunnerInfo {
    RunnerInfo::from_facts(RunnerFacts {
        cpu_model: cpu.into(),
        cpu_cores: 2,
        memory_gib: 8,
        os: "Linux".into(),
        kernel: "6.8".into(),
        rustc: "rustc 1.95.0".into(),
        target: "x86_64-unknown-linux-gnu".into(),
        gpu: None,
    })
}

/// Standard normal (Box-Muller).
pub(crate) fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

fn find<'a>(ms: &'a [Measurement], scenario: &str, subject: &str, metric: &str) -> &'a Measurement {
    ms.iter()
        .find(|m| m.scenario == scenario && m.subject == subject && m.metric == metric)
        .unwrap_or_else(|| panic!("no {scenario} {subject} {metric} in {ms:#?}"))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

// ---------------------------------------------------------------- ingest

#[test]
fn ingests_real_criterion_output() {
    let ms = ingest_criterion(&fixtures().join("criterion")).unwrap();
    assert_eq!(ms.len(), 2);
    let kib1 = find(&ms, "memory/pool_cycle/kib1", "vec", "wall_time");
    assert_eq!(
        (kib1.unit.as_str(), kib1.direction),
        ("ns", Direction::Lower)
    );
    assert_eq!(kib1.value, 6.9940478801727295);
    assert_eq!(kib1.lower, Some(6.973217725753784));
    assert_eq!(kib1.upper, Some(7.014878034591675));
    assert_eq!(
        kib1.samples,
        vec![29247795.0 / 4194304.0, 58845062.0 / 8388608.0]
    );
    let kib16 = find(&ms, "memory/pool_cycle/kib16", "vec", "wall_time");
    assert_eq!(kib16.samples.len(), 10);
    assert!(kib16.lower.unwrap() <= kib16.value && kib16.value <= kib16.upper.unwrap());
}

#[test]
fn ingests_real_gungraun_summaries() {
    let ms = ingest_gungraun(&fixtures().join("gungraun")).unwrap();
    assert_eq!(ms.len(), 4, "{ms:#?}");
    let ir = find(&ms, "memory/pool_cycle_ir/kib16", "vec", "instructions");
    assert_eq!((ir.value, ir.unit.as_str()), (364.0, "instructions"));
    assert_eq!(ir.samples, vec![364.0]);
    let cycles = find(&ms, "memory/pool_cycle_ir/kib16", "vec", "estimated_cycles");
    assert_eq!((cycles.value, cycles.unit.as_str()), (1047.0, "cycles"));
    let first_run = find(&ms, "memory/pool_cycle_ir/kib1", "vec", "instructions");
    assert_eq!(first_run.value, 179.0);
    assert!(
        ms.iter()
            .all(|m| m.direction == Direction::Lower && m.lower.is_none())
    );
}

#[test]
fn ingests_bmf_files() {
    let ms = ingest_bmf(&fixtures().join("bmf/load.json")).unwrap();
    assert_eq!(ms.len(), 16);
    let tp = find(
        &ms,
        "memory/vmm_random_read/prefetch",
        "perflab",
        "throughput",
    );
    assert_eq!(
        (tp.unit.as_str(), tp.direction, tp.lower),
        ("ops/s", Direction::Higher, None)
    );
    let p99 = find(
        &ms,
        "memory/vmm_random_read/no_prefetch",
        "read",
        "latency_p99",
    );
    assert_eq!(
        (p99.value, p99.lower, p99.upper),
        (10655.0, Some(10111.0), Some(11520.0))
    );
    assert_eq!(p99.unit, "ns");

    let foreign = ingest_bmf(&fixtures().join("bmf/foreign.json")).unwrap();
    assert_eq!(foreign.len(), 3);
    let fib = find(&foreign, "bench_fib/fib_20", "perflab", "latency");
    assert_eq!(fib.unit, "ns");
    let size = find(&foreign, "parser/parse_json", "serde_json", "file_size");
    assert_eq!((size.unit.as_str(), size.direction), ("", Direction::Lower));
}

#[test]
fn malformed_bmf_files_name_the_file_and_field() {
    let cases = [
        (
            "malformed_value.json",
            "field `memory/vmm_random_read/prefetch@perflab.latency_p99.value`: expected a number, found a string",
        ),
        (
            "malformed_missing_value.json",
            "field `memory/vmm_random_read/prefetch@perflab.throughput.value`: missing",
        ),
        (
            "malformed_bounds.json",
            "field `memory/vmm_random_read/prefetch@perflab.latency_p50`: lower_value 1300 > upper_value 1230",
        ),
        (
            "malformed_syntax.json",
            ":5:5: invalid json: trailing comma",
        ),
    ];
    for (file, expected) in cases {
        let path = fixtures().join("bmf").join(file);
        let e = ingest_bmf(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(e.contains(expected), "{file}: {e}");
    }
}

#[test]
fn malformed_criterion_output_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("criterion"), dir.path());
    let new = dir.path().join("memory_pool_cycle_kib1/vec/new");

    edit_json(&new.join("estimates.json"), |v| {
        v["median"]["point_estimate"] = "fast".into();
    });
    let e = ingest_criterion(dir.path()).unwrap_err();
    match &e {
        IngestError::Field { path, field, .. } => {
            assert_eq!(path, &new.join("estimates.json"));
            assert_eq!(field, "median.point_estimate");
        }
        other => panic!("unexpected {other}"),
    }

    fs::copy(
        fixtures().join("criterion/memory_pool_cycle_kib1/vec/new/estimates.json"),
        new.join("estimates.json"),
    )
    .unwrap();
    edit_json(&new.join("sample.json"), |v| {
        v["times"].as_array_mut().unwrap().pop();
    });
    let e = ingest_criterion(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("sample.json: field `times`: 1 times for 2 iters"),
        "{e}"
    );

    fs::remove_file(new.join("sample.json")).unwrap();
    let e = ingest_criterion(dir.path()).unwrap_err();
    assert!(
        matches!(&e, IngestError::Io { path, .. } if path == &new.join("sample.json")),
        "{e}"
    );

    let empty = tempfile::tempdir().unwrap();
    let e = ingest_criterion(empty.path()).unwrap_err();
    assert!(e.to_string().contains("no criterion results"), "{e}");
}

#[test]
fn malformed_gungraun_summary_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("gungraun"), dir.path());
    let summary = dir
        .path()
        .join("perflab-scenarios/memory_callgrind/pool_cycle_ir/vec.kib16/summary.json");
    edit_json(&summary, |v| {
        v["profiles"][0]["data"]["total"]["metrics"]
            .as_object_mut()
            .unwrap()
            .remove("Ir");
    });
    let e = ingest_gungraun(dir.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: field `profiles[0].data.total.metrics.Ir`: missing",
            summary.display()
        )
    );
    edit_json(&summary, |v| {
        v["module_path"] = serde_json::Value::Null;
    });
    let e = ingest_gungraun(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("field `module_path`: expected a string, found null"),
        "{e}"
    );
}

// ---------------------------------------------------------------- suites

const CATALOG: &str = r#"[
  {"id": "memory/pool_cycle/kib1", "engine": "criterion", "bench": "memory", "subjects": ["perflab", "vec"], "requires": ["cpu"]},
  {"id": "memory/pool_cycle/kib16", "engine": "criterion", "bench": "memory", "subjects": ["perflab", "vec"], "requires": ["cpu"]},
  {"id": "memory/pool_cycle_ir/kib1", "engine": "callgrind", "bench": "memory_callgrind", "subjects": ["perflab", "vec"], "requires": ["cpu"]},
  {"id": "memory/pool_cycle_ir/kib16", "engine": "callgrind", "bench": "memory_callgrind", "subjects": ["perflab", "vec"], "requires": ["cpu"]},
  {"id": "memory/vmm_random_read/no_prefetch", "engine": "load", "bench": null, "subjects": ["perflab", "read"], "requires": ["cpu"]},
  {"id": "memory/vmm_random_read/prefetch", "engine": "load", "bench": null, "subjects": ["perflab", "read"], "requires": ["cpu"]},
  {"id": "memory/remote_cache/get", "engine": "load", "bench": null, "subjects": ["perflab"], "requires": ["cpu", "redis"]}
]"#;

const SUITE: &str = r#"name = "memory"
description = "test suite"

[requirements]
cpu = true
redis = true

[[tests]]
id = "memory/pool_cycle/kib1"

[[tests]]
id = "memory/pool_cycle/kib16"

[[tests]]
id = "memory/pool_cycle_ir/kib1"

[[tests]]
id = "memory/pool_cycle_ir/kib16"

[[tests]]
id = "memory/vmm_random_read/no_prefetch"

[[tests]]
id = "memory/vmm_random_read/prefetch"
quick = false

[[tests]]
id = "memory/remote_cache/get"

[[targets]]
scenario = "memory/vmm_random_read/*"
metric = "throughput"
ratio_vs = "read"
min = 1.05

[[targets]]
scenario = "memory/vmm_random_read/*"
metric = "latency_p99"
max = 9000.0
"#;

#[test]
fn suite_parse_errors_have_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.toml");
    fs::write(
        &path,
        SUITE.replace("quick = false", "quick = false\nwarmup = 3"),
    )
    .unwrap();
    let e = BenchmarkSuite::load(&path).unwrap_err();
    match &e {
        SuiteError::Parse {
            path: p,
            line,
            column,
            message,
        } => {
            assert_eq!(p, &path);
            assert_eq!((*line, *column), (26, 1), "{e}");
            assert!(message.contains("warmup"), "{message}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        e.to_string()
            .starts_with(&format!("{}:26:1: ", path.display())),
        "{e}"
    );

    fs::write(&path, SUITE.replace("min = 1.05", "min = \"fast\"")).unwrap();
    let e = BenchmarkSuite::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:34:7: ", path.display())), "{e}");

    let e = BenchmarkSuite::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(matches!(e, SuiteError::NotFound { .. }), "{e}");
}

#[test]
fn unknown_scenario_ids_are_reported_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.toml");
    fs::write(
        &path,
        SUITE.replace("memory/pool_cycle/kib16", "memory/pool_cycle/kib17"),
    )
    .unwrap();
    let suite = BenchmarkSuite::load(&path).unwrap();
    let catalog = Catalog::parse(CATALOG).unwrap();
    let e = suite.validate(&catalog).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:12:6: unknown scenario id `memory/pool_cycle/kib17`",
            path.display()
        )
    );

    fs::write(
        &path,
        SUITE.replace("ratio_vs = \"read\"", "ratio_vs = \"mmap\""),
    )
    .unwrap();
    let e = BenchmarkSuite::load(&path)
        .unwrap()
        .validate(&catalog)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            ":31:12: no scenario matching `memory/vmm_random_read/*` measures anchor `mmap`"
        ),
        "{e}"
    );

    fs::write(&path, SUITE).unwrap();
    BenchmarkSuite::load(&path)
        .unwrap()
        .validate(&catalog)
        .unwrap();
}

// ---------------------------------------------------------------- history

fn run_with(suite: &str, value: f64) -> Run {
    let mut run = Run::new(suite, runner_info(), GitInfo::default());
    run.results = ingest_bmf(&fixtures().join("bmf/load.json")).unwrap();
    run.results[0].value = value;
    run
}

#[test]
fn appending_twice_gives_two_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path().join("history"));
    let a = run_with("memory", 1.0);
    let b = run_with("memory", 2.0);
    db.append(&a).unwrap();
    db.append(&b).unwrap();
    let listing = db.list().unwrap();
    let ids: Vec<&str> = listing.runs.iter().map(|r| r.id.as_str()).collect();
    let mut expected = vec![a.id.as_str(), b.id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(listing.runs.iter().all(|r| r.measurements == 16));
    assert_eq!(db.load(&a.id).unwrap(), a);
    assert_eq!(db.load(&b.id).unwrap(), b);
}

#[test]
fn concurrent_appends_from_two_threads_both_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path().join("history"));
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let db = db.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let runs: Vec<Run> = (0..4)
                    .map(|i| run_with("memory", f64::from(t * 10 + i)))
                    .collect();
                barrier.wait();
                for run in &runs {
                    db.append(run).unwrap();
                }
                runs
            })
        })
        .collect();
    let mut written: Vec<Run> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    written.sort_by(|a, b| a.id.cmp(&b.id));
    let listing = db.list().unwrap();
    assert!(listing.unreadable.is_empty());
    assert_eq!(listing.runs.len(), 8);
    for run in &written {
        assert_eq!(&db.load(&run.id).unwrap(), run);
    }
}

#[test]
fn a_corrupt_parquet_file_is_reported_with_its_path_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = HistoricalDatabase::new(dir.path());
    let good = run_with("memory", 1.0);
    let good_path = db.append(&good).unwrap();

    let garbage = dir.path().join("20200101T000000.000Z-000000.parquet");
    fs::write(&garbage, b"PAR1 this is not a parquet file").unwrap();
    let truncated = dir.path().join("20200101T000001.000Z-000001.parquet");
    let bytes = fs::read(&good_path).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let before: Vec<Vec<u8>> = [&garbage, &truncated]
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();

    let listing = db.list().unwrap();
    assert_eq!(listing.runs.len(), 1);
    assert_eq!(listing.runs[0].id, good.id);
    assert_eq!(listing.unreadable.len(), 2);
    for (e, path) in listing.unreadable.iter().zip([&garbage, &truncated]) {
        assert!(
            matches!(e, StoreError::Corrupt { path: p, .. } if p == path),
            "{e}"
        );
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
    let e = db.load("20200101T000001").unwrap_err();
    assert!(
        matches!(&e, StoreError::Corrupt { path, .. } if path == &truncated),
        "{e}"
    );

    // Appending goes on beside the corrupt files and never touches them.
    db.append(&run_with("memory", 2.0)).unwrap();
    let after: Vec<Vec<u8>> = [&garbage, &truncated]
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(db.list().unwrap().runs.len(), 2);
}

// ---------------------------------------------------------------- run flow

/// A fake `cargo`: prints the catalog, copies the criterion fixture into CRITERION_HOME,
/// fails the callgrind bench, and writes the BMF fixture for the load scenarios.
fn fake_cargo(
    seen: Arc<Mutex<Vec<CommandSpec>>>,
) -> impl Fn(&CommandSpec) -> io::Result<CommandOutput> {
    move |spec: &CommandSpec| {
        seen.lock().unwrap().push(spec.clone());
        match &spec.purpose {
            CommandPurpose::Catalog => Ok(CommandOutput::ok(CATALOG)),
            CommandPurpose::Adapter => Ok(CommandOutput::ok("null")),
            CommandPurpose::Engine {
                engine: Engine::Criterion,
                ..
            } => {
                let home = spec
                    .env_var("CRITERION_HOME")
                    .expect("CRITERION_HOME is set");
                copy_dir(&fixtures().join("criterion"), Path::new(home));
                Ok(CommandOutput::ok(
                    "Benchmarking memory/pool_cycle/kib1/vec ... done",
                ))
            }
            CommandPurpose::Engine {
                engine: Engine::Callgrind,
                ..
            } => Ok(CommandOutput::failed(
                101,
                "Error: gungraun-runner not found: install it with `cargo xtask setup`",
            )),
            CommandPurpose::Engine {
                engine: Engine::Load,
                ..
            } => {
                let out = spec.arg_after("--out").expect("--out FILE");
                fs::copy(fixtures().join("bmf/load.json"), out)?;
                Ok(CommandOutput {
                    stderr: "skipped: memory/remote_cache/get: no redis here\n".into(),
                    ..CommandOutput::ok("")
                })
            }
        }
    }
}

fn framework(root: &Path, seen: Arc<Mutex<Vec<CommandSpec>>>) -> BenchmarkingFramework {
    let suites = root.join("scenarios/suites");
    fs::create_dir_all(&suites).unwrap();
    fs::write(suites.join("memory.toml"), SUITE).unwrap();
    let mut config = FrameworkConfig::new(root);
    config.progress = false;
    config.capabilities = Capabilities::default(); // no redis, no gpu
    BenchmarkingFramework::new(config)
        .with_command_runner(Arc::new(fake_cargo(seen)))
        .with_runner_info(runner_info())
        .with_git(GitInfo {
            commit: Some("0123456789abcdef".into()),
            branch: Some("main".into()),
        })
}

#[tokio::test]
async fn run_suite_end_to_end_with_a_failing_engine() {
    let root = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fw = framework(root.path(), seen.clone());
    let report = fw.run_suite("memory").await.unwrap();
    let run = &report.run;

    // Criterion and load results landed.
    assert_eq!(run.results.len(), 2 + 16, "{:#?}", run.results);
    find(&run.results, "memory/pool_cycle/kib16", "vec", "wall_time");
    find(
        &run.results,
        "memory/vmm_random_read/prefetch",
        "read",
        "throughput",
    );

    // The failing callgrind engine is data: one failure per scenario it should have measured.
    assert_eq!(run.failures.len(), 2, "{:#?}", run.failures);
    for f in &run.failures {
        assert_eq!(f.engine, Some(Engine::Callgrind));
        assert!(
            f.scenario
                .as_deref()
                .unwrap()
                .starts_with("memory/pool_cycle_ir/")
        );
        assert!(
            f.reason.contains("exit code 101") && f.reason.contains("gungraun-runner not found"),
            "{}",
            f.reason
        );
    }

    // The redis scenario is skipped, with the reason, before any engine runs.
    assert_eq!(run.skipped.len(), 1);
    assert_eq!(run.skipped[0].scenario, "memory/remote_cache/get");
    assert!(
        run.skipped[0].reason.contains("requires redis"),
        "{}",
        run.skipped[0].reason
    );

    // Targets: prefetch beats `read` by > 1.05x and has p99 <= 9000; no_prefetch misses p99.
    let status = |scenario: &str, metric: &str| {
        report
            .targets
            .iter()
            .find(|t| t.scenario.as_deref() == Some(scenario) && t.metric == metric)
            .map(|t| t.status)
    };
    assert_eq!(
        status("memory/vmm_random_read/prefetch", "throughput"),
        Some(TargetStatus::Met)
    );
    assert_eq!(
        status("memory/vmm_random_read/prefetch", "latency_p99"),
        Some(TargetStatus::Met)
    );
    assert_eq!(
        status("memory/vmm_random_read/no_prefetch", "throughput"),
        Some(TargetStatus::Met)
    );
    assert_eq!(
        status("memory/vmm_random_read/no_prefetch", "latency_p99"),
        Some(TargetStatus::Missed)
    );

    // The commands: catalog, one criterion bench, the callgrind bench (whole), load.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    let work = report.work_dir.clone().unwrap();
    assert!(work.ends_with(format!("target/perflab/work/{}", run.id)));
    let crit = &seen[1];
    assert_eq!(crit.arg_after("--bench"), Some("memory"));
    assert!(crit.args.contains(&"--noplot".to_owned()));
    assert_eq!(
        crit.env_var("CRITERION_HOME"),
        Some(work.join("criterion/memory").to_str().unwrap())
    );
    let cg = &seen[2];
    assert_eq!(cg.arg_after("--bench"), Some("memory_callgrind"));
    assert_eq!(cg.env_var("GUNGRAUN_SAVE_SUMMARY"), Some("json"));
    let load = &seen[3];
    assert_eq!(
        load.arg_after("--filter"),
        Some("^(?:memory/vmm_random_read/no_prefetch|memory/vmm_random_read/prefetch)$")
    );

    // The run is in history, whole; a second run compares with it.
    let db = fw.historical_data().clone();
    let id = run.id.clone();
    let stored = tokio::task::spawn_blocking(move || db.load(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored, run);
    assert_eq!(report.history_file, fw.historical_data().path_of(&run.id));

    let second = fw.run_suite("memory").await.unwrap();
    let cmp = fw.compare_with_historical(&second.run).await.unwrap();
    assert_eq!(cmp.baseline_run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(cmp.entries.len(), 18);
    assert!(cmp.entries.iter().all(|e| e.relative_change == Some(0.0)));
    // Identical output twice: nothing changed (wide samples may be `noisy`, never a change).
    assert!(
        cmp.entries
            .iter()
            .all(|e| matches!(e.verdict, Verdict::Unchanged | Verdict::Noisy)),
        "{}",
        cmp.render_table()
    );
    assert!(fw.detect_regressions(&cmp).is_empty());
    let first = fw.compare_with_historical(run).await.unwrap();
    assert_eq!(first.baseline_run_id, None);
    assert!(first.entries.iter().all(|e| e.verdict == Verdict::Skipped));

    // The report with plots compares with history (Polars): off the runtime's thread.
    let (fw2, head) = (fw.clone(), second.run.clone());
    let report = tokio::task::spawn_blocking(move || fw2.generate_performance_report(&head))
        .await
        .unwrap()
        .unwrap();
    assert!(report.plots.is_some());
    let table = report.render_table();
    assert!(
        table.contains("memory/pool_cycle_ir/kib1 (callgrind): `GUNGRAUN_HOME="),
        "{table}"
    );
    assert!(
        table.contains("MISSED (9312; perflab latency_p99 <= 9000)"),
        "{table}"
    );
    assert!(
        table.contains("memory/remote_cache/get: requires redis"),
        "{table}"
    );
}

#[test]
fn filter_and_quick_select_scenarios() {
    let root = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut fw = framework(root.path(), seen.clone());
    let mut config = fw.config().clone();
    config.filter = Some(regex::Regex::new("vmm").unwrap());
    config.quick = true;
    fw = BenchmarkingFramework::new(config)
        .with_command_runner(Arc::new(fake_cargo(seen.clone())))
        .with_runner_info(runner_info());
    let report = fw.run_suite_blocking("memory").unwrap();
    // Only no_prefetch: prefetch is `quick = false`; the load engine got `--quick`.
    let scenarios: std::collections::BTreeSet<&str> = report
        .run
        .results
        .iter()
        .map(|m| m.scenario.as_str())
        .collect();
    assert_eq!(
        scenarios.into_iter().collect::<Vec<_>>(),
        vec!["memory/vmm_random_read/no_prefetch"]
    );
    assert!(report.run.failures.is_empty(), "{:#?}", report.run.failures);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].args.contains(&"--quick".to_owned()));

    let mut config = fw.config().clone();
    config.filter = Some(regex::Regex::new("nothing").unwrap());
    let e = BenchmarkingFramework::new(config)
        .with_command_runner(Arc::new(fake_cargo(Arc::default())))
        .with_runner_info(runner_info())
        .run_suite_blocking("memory")
        .unwrap_err();
    assert!(matches!(e, SuiteError::NothingSelected { .. }), "{e}");
}

#[test]
fn an_engine_that_cannot_start_is_recorded() {
    let root = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = fake_cargo(seen);
    let fw = framework(root.path(), Arc::default()).with_command_runner(Arc::new(
        move |spec: &CommandSpec| match spec.purpose {
            CommandPurpose::Engine {
                engine: Engine::Load,
                ..
            } => Err(io::Error::new(io::ErrorKind::NotFound, "cargo: not found")),
            _ => inner(spec),
        },
    ));
    let run = fw.run_suite_blocking("memory").unwrap().run;
    let load_failures: Vec<_> = run
        .failures
        .iter()
        .filter(|f| f.engine == Some(Engine::Load))
        .collect();
    assert_eq!(load_failures.len(), 2);
    assert!(
        load_failures[0].reason.contains("cannot run `cargo run"),
        "{}",
        load_failures[0].reason
    );
    assert_eq!(run.results.len(), 2, "criterion results still land");
}

/// Writes criterion's output for `id`/`subject` into `home`: 40 samples spread ±0.5% around
/// `center` ns (the same spread every time, so only `center` moves between runs).
fn write_criterion(home: &Path, id: &str, subject: &str, center: f64) {
    let dir = home.join(id.replace('/', "_")).join(subject).join("new");
    fs::create_dir_all(&dir).unwrap();
    let times: Vec<f64> = (0..40)
        .map(|i| center * (1.0 + 0.01 * (f64::from((i * 17) % 40) / 40.0 - 0.5)))
        .collect();
    let json = |name: &str, v: serde_json::Value| fs::write(dir.join(name), v.to_string()).unwrap();
    json(
        "sample.json",
        serde_json::json!({"sampling_mode": "Flat", "iters": vec![1.0; 40], "times": times}),
    );
    json(
        "estimates.json",
        serde_json::json!({"median": {
            "confidence_interval": {"confidence_level": 0.95, "lower_bound": center * 0.999, "upper_bound": center * 1.001},
            "point_estimate": center,
            "standard_error": center * 0.001,
        }}),
    );
    json(
        "benchmark.json",
        serde_json::json!({"group_id": id, "function_id": subject, "value_str": null,
            "throughput": null, "full_id": format!("{id}/{subject}"),
            "directory_name": format!("{}/{subject}", id.replace('/', "_")), "title": id}),
    );
}

/// A framework over the fake suite whose criterion runs measure `memory/pool_cycle/kib1` at
/// 100 ns times the next of `factors` (one per criterion run) and `kib16` at 100 ns always.
fn scaled_framework(
    root: &Path,
    seen: Arc<Mutex<Vec<CommandSpec>>>,
    factors: Vec<f64>,
) -> BenchmarkingFramework {
    let factors = Arc::new(Mutex::new(factors.into_iter()));
    let inner = fake_cargo(Arc::default());
    let runner = move |spec: &CommandSpec| {
        seen.lock().unwrap().push(spec.clone());
        if !matches!(
            spec.purpose,
            CommandPurpose::Engine {
                engine: Engine::Criterion,
                ..
            }
        ) {
            return inner(spec);
        }
        let home = Path::new(spec.env_var("CRITERION_HOME").unwrap());
        let filter = spec.args.iter().find(|a| a.starts_with("^(?:")).unwrap();
        let filter = regex::Regex::new(filter).unwrap();
        let factor = factors.lock().unwrap().next().expect("a factor per run");
        for (id, center) in [
            ("memory/pool_cycle/kib1", 100.0 * factor),
            ("memory/pool_cycle/kib16", 100.0),
        ] {
            if filter.is_match(&format!("{id}/perflab")) {
                write_criterion(home, id, "perflab", center);
            }
        }
        Ok(CommandOutput::ok(""))
    };
    let mut config = framework(root, Arc::default()).config().clone();
    config.filter = Some(regex::Regex::new("^memory/pool_cycle/").unwrap());
    config.quick = true;
    BenchmarkingFramework::new(config)
        .with_command_runner(Arc::new(runner))
        .with_runner_info(runner_info())
        .with_git(GitInfo::default())
}

#[test]
fn suspected_regressions_are_re_measured_alone_before_they_count() {
    // Base 1.0, head 1.3, and the re-measurement either reproduces it (1.3) or not (1.0).
    for (confirm_factor, confirmed) in [(1.3, true), (1.0, false)] {
        let root = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let fw = scaled_framework(root.path(), seen.clone(), vec![1.0, 1.3, confirm_factor]);
        let base = fw.run_suite_blocking("memory").unwrap().run;
        let head = fw.run_suite_blocking("memory").unwrap().run;
        let comparison = fw.compare_runs_blocking(&head, None).unwrap();
        let suspects = comparison.regressions();
        assert_eq!(suspects.len(), 1, "{}", comparison.render_table());
        assert_eq!(suspects[0].scenario, "memory/pool_cycle/kib1");

        let c = fw.confirm_regressions_blocking(&comparison, &base).unwrap();
        assert_eq!(c.confirmed.len(), usize::from(confirmed), "{}", c.render());
        assert_eq!(c.refuted.len(), usize::from(!confirmed), "{}", c.render());
        // The suspect alone, never quick, with more samples.
        let seen = seen.lock().unwrap();
        let again = seen.last().unwrap();
        assert_eq!(
            again
                .args
                .iter()
                .find(|a| a.starts_with("^(?:"))
                .map(String::as_str),
            Some("^(?:memory/pool_cycle/kib1)/")
        );
        assert!(!again.args.contains(&"--quick".to_owned()), "{again}");
        assert!(
            again.args.windows(2).any(|w| w == ["--sample-size", "200"]),
            "{again}"
        );
        // Kept beside its engines' output, and not in history.
        let run = c.run.as_ref().unwrap();
        assert_eq!(run.results.len(), 1);
        assert!(c.run_file.as_ref().unwrap().is_file());
        assert_eq!(fw.historical_data().list().unwrap().runs.len(), 2);
        let text = c.render();
        let verdict = if confirmed {
            "confirmed      memory/pool_cycle/kib1"
        } else {
            "not confirmed  memory/pool_cycle/kib1"
        };
        assert!(text.contains(verdict), "{text}");
    }
    // Nothing suspected: nothing re-measured.
    let root = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fw = scaled_framework(root.path(), seen.clone(), vec![1.0, 1.0]);
    let base = fw.run_suite_blocking("memory").unwrap().run;
    let head = fw.run_suite_blocking("memory").unwrap().run;
    let comparison = fw.compare_runs_blocking(&head, Some(&base)).unwrap();
    let before = seen.lock().unwrap().len();
    let c = fw.confirm_regressions_blocking(&comparison, &base).unwrap();
    assert!(c.run.is_none() && c.confirmed.is_empty() && c.refuted.is_empty());
    assert_eq!(seen.lock().unwrap().len(), before);
}

/// A stand-in `cargo` for the `perflab` binary: prints the catalog, and for each bench copies
/// the criterion output prepared for the next factor in `factors` (one per line) into
/// `$CRITERION_HOME`, logging its arguments.
const FAKE_CARGO: &str = r#"#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
case "$*" in
  *" list --json"*) cat "$dir/catalog.json" ;;
  bench*)
    factor=$(head -n 1 "$dir/factors")
    sed -i 1d "$dir/factors"
    mkdir -p "$CRITERION_HOME"
    cp -R "$dir/criterion-$factor/." "$CRITERION_HOME/" ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"#;

#[test]
fn cli_run_confirms_suspects_and_fails_only_on_confirmed_regressions() {
    use std::os::unix::fs::PermissionsExt as _;
    let ws = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let suites = ws.path().join("scenarios/suites");
    fs::create_dir_all(&suites).unwrap();
    fs::write(
        suites.join("memory.toml"),
        "name = \"memory\"\ndescription = \"d\"\n\n[[tests]]\nid = \"memory/pool_cycle/kib1\"\n",
    )
    .unwrap();
    fs::write(
        bin.path().join("catalog.json"),
        r#"[{"id": "memory/pool_cycle/kib1", "engine": "criterion", "bench": "memory", "subjects": ["perflab"], "requires": ["cpu"]}]"#,
    )
    .unwrap();
    for factor in ["1.0", "1.3"] {
        let home = bin.path().join(format!("criterion-{factor}"));
        write_criterion(
            &home,
            "memory/pool_cycle/kib1",
            "perflab",
            100.0 * factor.parse::<f64>().unwrap(),
        );
    }
    let cargo = bin.path().join("cargo");
    fs::write(&cargo, FAKE_CARGO).unwrap();
    fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let history = ws.path().join("history");
    let run = |factors: &str, args: &[&str]| {
        fs::write(bin.path().join("factors"), factors).unwrap();
        fs::write(bin.path().join("calls"), "").unwrap();
        Command::new(env!("CARGO_BIN_EXE_perflab"))
            .args(["--workspace", ws.path().to_str().unwrap()])
            .args(["--history", history.to_str().unwrap()])
            .args(args)
            .env("PATH", &path)
            .env("PERFLAB_LOG", "error")
            .output()
            .unwrap()
    };
    let json = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };

    let first = run("1.0\n", &["run", "--suite", "memory"]);
    assert!(first.status.success(), "{first:?}");
    let save = run("", &["baseline", "save", "main"]);
    assert!(save.status.success(), "{save:?}");

    // A 30% slowdown that the re-measurement reproduces: exit code 3, named on stderr.
    let out = run(
        "1.3\n1.3\n",
        &["run", "--suite", "memory", "--fail-on-regression", "--json"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 confirmed regression(s)")
            && stderr.contains("memory/pool_cycle/kib1 perflab wall_time: +"),
        "{stderr}"
    );
    let v = json(&out);
    assert_eq!(v["base"]["kind"], "baseline");
    assert_eq!(v["base"]["name"], "main");
    assert_eq!(v["comparison"]["entries"][0]["verdict"], "regression");
    assert_eq!(v["regressions"].as_array().unwrap().len(), 1);
    assert_eq!(v["confirmation"]["confirmed"].as_array().unwrap().len(), 1);
    assert!(v["run"]["id"].is_string() && v["history_file"].is_string());
    let calls = fs::read_to_string(bin.path().join("calls")).unwrap();
    let benches: Vec<&str> = calls.lines().filter(|l| l.starts_with("bench")).collect();
    assert_eq!(benches.len(), 2, "{calls}");
    assert!(benches[1].contains("--sample-size 200"), "{calls}");

    // The same slowdown, not reproduced: reported, and the exit code stays 0.
    let out = run(
        "1.3\n1.0\n",
        &["run", "--suite", "memory", "--fail-on-regression"],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not confirmed  memory/pool_cycle/kib1")
            && stdout.contains("0 of 1 suspected regression(s) confirmed"),
        "{stdout}"
    );

    // Without --fail-on-regression or --confirm, a suspect is reported and nothing re-runs.
    let out = run("1.3\n", &["run", "--suite", "memory"]);
    assert!(out.status.success(), "{out:?}");
    let calls = fs::read_to_string(bin.path().join("calls")).unwrap();
    assert_eq!(calls.lines().filter(|l| l.starts_with("bench")).count(), 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 regression(s)"));
}

#[test]
fn a_broken_catalog_or_suite_stops_the_run_before_any_engine() {
    let root = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fw = framework(root.path(), seen.clone());
    fs::write(
        root.path().join("scenarios/suites/memory.toml"),
        SUITE.replace("memory/pool_cycle/kib1\"", "memory/pool_cycle/kib99\""),
    )
    .unwrap();
    let e = fw.run_suite_blocking("memory").unwrap_err();
    assert!(
        matches!(
            e,
            SuiteError::UnknownScenario {
                line: 9,
                column: 6,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the catalog was asked for"
    );

    let fw =
        framework(root.path(), Arc::default()).with_command_runner(Arc::new(|_: &CommandSpec| {
            Ok(CommandOutput::failed(
                101,
                "error: package `perflab-scenarios` not found",
            ))
        }));
    let e = fw.run_suite_blocking("memory").unwrap_err().to_string();
    assert!(
        e.contains("exit code 101") && e.contains("perflab-scenarios"),
        "{e}"
    );
    assert!(!root.path().join("target/perflab/history").exists());
}

// ---------------------------------------------------------------- the binary

/// Runs the `perflab` binary with quiet logs and the default history location.
fn perflab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perflab"))
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .env("PERFLAB_LOG", "error")
        .output()
        .unwrap()
}

#[test]
fn cli_ingest_then_history_list_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h");
    let h = history.to_str().unwrap();
    let ws = dir.path().to_str().unwrap();
    let bmf = fixtures().join("bmf/load.json");
    let out = perflab(&[
        "--workspace",
        ws,
        "--history",
        h,
        "ingest",
        "--bmf",
        bmf.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["run"]["results"].as_array().unwrap().len(), 16);
    assert_eq!(report["run"]["suite"], "adhoc");
    let id = report["run"]["id"].as_str().unwrap().to_owned();

    let crit = fixtures().join("criterion");
    let gg = fixtures().join("gungraun");
    let out = perflab(&[
        "--workspace",
        ws,
        "--history",
        h,
        "ingest",
        "--criterion",
        crit.to_str().unwrap(),
        "--gungraun",
        gg.to_str().unwrap(),
        "--suite",
        "memory",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("memory/pool_cycle_ir/kib16") && table.contains("364 instructions"),
        "{table}"
    );
    assert!(table.contains("run id: "), "{table}");

    let out = perflab(&["--history", h, "history", "list", "--json"]);
    assert!(out.status.success());
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);

    let out = perflab(&["--history", h, "history", "show", &id, "--json"]);
    assert!(out.status.success());
    let shown: Run = serde_json::from_slice(&out.stdout).unwrap();
    let ingested: Run = serde_json::from_value(report["run"].clone()).unwrap();
    assert_eq!(shown, ingested);

    let out = perflab(&["--history", h, "history", "show", &id]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("602.12 k ops/s"), "{text}");

    // A corrupt file: listed runs still print, the file is named, the exit status is nonzero.
    let corrupt = history.join("20200101T000000.000Z-abcdef.parquet");
    fs::write(&corrupt, b"not parquet").unwrap();
    let out = perflab(&["--history", h, "history", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&corrupt.display().to_string()));
    assert_eq!(fs::read(&corrupt).unwrap(), b"not parquet");
}

#[test]
fn cli_reports_malformed_input_and_has_help_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let bad = fixtures().join("bmf/malformed_value.json");
    let out = perflab(&[
        "--history",
        dir.path().to_str().unwrap(),
        "ingest",
        "--bmf",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("malformed_value.json") && err.contains("latency_p99.value"),
        "{err}"
    );

    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["ingest", "--help"],
        &["history", "--help"],
        &["history", "list", "--help"],
        &["history", "show", "--help"],
    ] {
        let out = perflab(args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: perflab"),
            "{args:?}"
        );
    }
}
