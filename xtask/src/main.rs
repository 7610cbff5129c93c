//! `cargo xtask`: the developer entry point; builds and runs perflab's pieces with cargo.
//!
//! xtask links no workspace crate and no heavy dependency, so it builds in seconds: it
//! shells out to cargo and to the release `perflab` binary, which does the real work.

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

/// Developer tasks for the perflab workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run benchmark suites, append the run to history and print the results table.
    Bench(BenchArgs),
    /// Save, list, show or delete named baselines of this runner (baselines/<fingerprint>/).
    Baseline {
        #[command(subcommand)]
        command: BaselineTask,
    },
    /// Compare two runs: a verdict per scenario, subject and metric.
    Compare {
        /// The base: a run id (or unique prefix) or a baseline name.
        #[arg(long, value_name = "RUN|BASELINE")]
        base: String,
        /// The head run: id or unique prefix.
        #[arg(long, value_name = "RUN")]
        head: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change points in a series file, or in every scenario-metric of the history.
    Analyze {
        /// A CSV, Parquet or NDJSON series, or a history folder (default: target/perflab/history).
        #[arg(long, value_name = "FILE|DIR")]
        input: Option<PathBuf>,
        /// The numeric column of a series file.
        #[arg(long, value_name = "NAME")]
        column: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the static HTML report under reports/site/ and print its path.
    Report {
        /// A run that must have a page (id or unique prefix).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// Open the report in the desktop's browser.
        #[arg(long)]
        open: bool,
    },
    /// Print the Markdown summary of a run (also to $GITHUB_STEP_SUMMARY when set).
    Summary {
        #[command(flatten)]
        source: SummarySource,
        /// Write the Markdown to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Post or update perflab's one comment on a pull request (GITHUB_TOKEN).
    Comment {
        /// Pull request number (default: from the GitHub Actions event).
        #[arg(long, value_name = "N")]
        pr: Option<u64>,
        /// Repository OWNER/NAME (default: $GITHUB_REPOSITORY).
        #[arg(long, value_name = "OWNER/NAME")]
        repo: Option<String>,
        /// Print the comment instead of posting it.
        #[arg(long)]
        dry_run: bool,
        /// Post this Markdown file instead of summarizing a run.
        #[arg(long, value_name = "FILE")]
        summary: Option<PathBuf>,
        #[command(flatten)]
        source: SummarySource,
    },
    /// Export runs as BMF (for Bencher), CSV or Parquet.
    Export {
        /// bmf, csv or parquet.
        #[arg(long, value_name = "FORMAT")]
        format: String,
        /// The run (default: the latest).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// Every run of the history (csv, parquet).
        #[arg(long)]
        all: bool,
        /// Output file (default: stdout; required for parquet).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run the workspace's tests (unit, integration and doc tests), then the loom models.
    Test,
    /// Check the tools perflab needs, install those it can (gungraun runner), print the rest.
    Setup,
}

#[derive(Debug, Subcommand)]
enum BaselineTask {
    /// Save a run (default: the latest) as baseline NAME.
    Save {
        name: String,
        /// Run id or unique prefix.
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
    },
    /// List every runner's baselines; `*` marks this runner's.
    List,
    /// Show baseline NAME of this runner.
    Show { name: String },
    /// Delete baseline NAME of this runner.
    Delete { name: String },
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Suite to run (a file in scenarios/suites/); every suite when left out.
    #[arg(long)]
    suite: Option<String>,
    /// Only scenarios whose id matches this regular expression.
    #[arg(long)]
    filter: Option<String>,
    /// Shorter measurements and smaller load scenarios, for a fast look.
    #[arg(long)]
    quick: bool,
    /// Compare with this baseline (default: `main` of this runner when it exists, else
    /// the previous run).
    #[arg(long, value_name = "NAME")]
    baseline: Option<String>,
    /// Re-measure each suspected regression (its scenario alone, more samples).
    #[arg(long)]
    confirm: bool,
    /// Exit with code 3 when a regression is confirmed (implies --confirm).
    #[arg(long)]
    fail_on_regression: bool,
    /// History folder (default: target/perflab/history).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Print the run, the comparison and the confirmation as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// `cpu`: the suites that need no GPU; `gpu`: the suites that need one, on the adapter
    /// the scenario runner finds (fingerprinted, software adapters marked); `auto`: every
    /// suite, the GPU ones on the adapter when there is one [default: every suite, each on
    /// its default runner, which is `auto` for GPU suites].
    #[arg(long, value_parser = ["cpu", "gpu", "auto"])]
    runner: Option<String>,
}

/// Which run a summary or comment is about.
#[derive(Debug, Args)]
struct SummarySource {
    /// The head run (default: the latest).
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// The base run or baseline (default: `main` of the head's runner, else the previous run).
    #[arg(long, value_name = "RUN|BASELINE")]
    base: Option<String>,
    /// Link to the HTML report.
    #[arg(long, value_name = "URL")]
    report_url: Option<String>,
}

impl SummarySource {
    fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, value) in [
            ("--run", &self.run),
            ("--base", &self.base),
            ("--report-url", &self.report_url),
        ] {
            if let Some(v) = value {
                out.extend([flag.to_owned(), v.clone()]);
            }
        }
        out
    }
}

/// The exit code of `perflab run --fail-on-regression` when a regression is confirmed.
const EXIT_REGRESSION: i32 = 3;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::Bench(args) => bench(&root, &args),
        Task::Baseline { command } => {
            let args: Vec<String> = match command {
                BaselineTask::Save { name, run } => {
                    let mut args = vec!["save".to_owned(), name];
                    args.extend(run.into_iter().flat_map(|run| ["--run".to_owned(), run]));
                    args
                }
                BaselineTask::List => vec!["list".to_owned()],
                BaselineTask::Show { name } => vec!["show".to_owned(), name],
                BaselineTask::Delete { name } => vec!["delete".to_owned(), name],
            };
            run(perflab(&root)?.arg("baseline").args(args))
        }
        Task::Compare { base, head, json } => {
            let mut cmd = perflab(&root)?;
            cmd.args(["compare", "--base", &base, "--head", &head]);
            if json {
                cmd.arg("--json");
            }
            run(&mut cmd)
        }
        Task::Analyze {
            input,
            column,
            json,
        } => {
            let mut cmd = perflab(&root)?;
            let input = input.unwrap_or_else(|| target_dir(&root).join("perflab").join("history"));
            cmd.arg("analyze").arg("--input").arg(input);
            if let Some(column) = column {
                cmd.args(["--column", &column]);
            }
            if json {
                cmd.arg("--json");
            }
            run(&mut cmd)
        }
        Task::Report { run, open } => report(&root, run.as_deref(), open),
        Task::Summary { source, out } => {
            let mut cmd = perflab(&root)?;
            cmd.arg("summary").args(source.args());
            if let Some(out) = out {
                cmd.arg("--out").arg(out);
            }
            run(&mut cmd)
        }
        Task::Comment {
            pr,
            repo,
            dry_run,
            summary,
            source,
        } => {
            let mut cmd = perflab(&root)?;
            cmd.arg("comment").args(source.args());
            if let Some(pr) = pr {
                cmd.args(["--pr", &pr.to_string()]);
            }
            if let Some(repo) = repo {
                cmd.args(["--repo", &repo]);
            }
            if dry_run {
                cmd.arg("--dry-run");
            }
            if let Some(summary) = summary {
                cmd.arg("--summary").arg(summary);
            }
            run(&mut cmd)
        }
        Task::Export {
            format,
            run: id,
            all,
            out,
        } => {
            let mut cmd = perflab(&root)?;
            cmd.args(["export", "--format", &format]);
            if let Some(id) = id {
                cmd.args(["--run", &id]);
            }
            if all {
                cmd.arg("--all");
            }
            if let Some(out) = out {
                cmd.arg("--out").arg(out);
            }
            run(&mut cmd)
        }
        Task::Test => test(&root),
        Task::Setup => setup(&root),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Builds the release `perflab` binary (Polars in a debug build is slow); returns its path.
fn build_perflab(root: &Path) -> Result<PathBuf> {
    run(cargo(root).args(["build", "--release", "--quiet", "-p", "perflab"]))?;
    Ok(target_dir(root).join("release").join("perflab"))
}

/// A command running the freshly built release `perflab` in the workspace root.
fn perflab(root: &Path) -> Result<Command> {
    let mut cmd = Command::new(build_perflab(root)?);
    cmd.current_dir(root);
    Ok(cmd)
}

fn bench(root: &Path, args: &BenchArgs) -> Result<()> {
    let suites = match (&args.suite, args.runner.as_deref()) {
        (Some(suite), _) => vec![suite.clone()],
        (None, Some(runner @ ("cpu" | "gpu"))) => {
            let mut picked = Vec::new();
            for suite in suite_names(root)? {
                if suite_needs_gpu(root, &suite)? == (runner == "gpu") {
                    picked.push(suite);
                }
            }
            picked
        }
        (None, _) => suite_names(root)?,
    };
    let perflab = build_perflab(root)?;
    // Every suite runs even after one regressed; the exit code says whether any did.
    let mut regressed = Vec::new();
    for suite in suites {
        let mut cmd = Command::new(&perflab);
        cmd.current_dir(root).args(["run", "--suite", &suite]);
        if let Some(filter) = &args.filter {
            cmd.args(["--filter", filter]);
        }
        if args.quick {
            cmd.arg("--quick");
        }
        if let Some(baseline) = &args.baseline {
            cmd.args(["--baseline", baseline]);
        }
        if let Some(history) = &args.history {
            cmd.arg("--history").arg(history);
        }
        if args.confirm {
            cmd.arg("--confirm");
        }
        if args.fail_on_regression {
            cmd.arg("--fail-on-regression");
        }
        if args.json {
            cmd.arg("--json");
        }
        if let Some(runner) = &args.runner {
            cmd.args(["--runner", runner]);
        }
        let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
        match status.code() {
            Some(0) => {}
            Some(EXIT_REGRESSION) => regressed.push(suite),
            _ => bail!("{cmd:?} failed: {status}"),
        }
    }
    // The report of what just ran (and of earlier runs), whatever the verdicts.
    let mut cmd = Command::new(&perflab);
    cmd.current_dir(root).arg("report");
    if let Some(history) = &args.history {
        cmd.arg("--history").arg(history);
    }
    if args.json {
        // Keep stdout one JSON document per suite.
        cmd.stdout(std::process::Stdio::from(std::io::stderr()));
    }
    run(&mut cmd)?;
    if !regressed.is_empty() {
        eprintln!(
            "confirmed regressions in suite(s): {}",
            regressed.join(", ")
        );
        std::process::exit(EXIT_REGRESSION);
    }
    Ok(())
}

/// Writes the HTML report; with `open`, shows it in the desktop's browser.
fn report(root: &Path, run_id: Option<&str>, open: bool) -> Result<()> {
    let mut cmd = perflab(root)?;
    cmd.arg("report");
    if let Some(id) = run_id {
        cmd.args(["--run", id]);
    }
    run(&mut cmd)?;
    if open {
        let index = root.join("reports").join("site").join("index.html");
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        if let Err(e) = Command::new(opener).arg(&index).status() {
            eprintln!(
                "cannot start `{opener}` ({e}): open {} yourself",
                index.display()
            );
        }
    }
    Ok(())
}

/// The crates with loom model-checking tests of their lock-free parts.
const LOOM_CRATES: [&str; 2] = ["rust-ai-ide-scheduler", "rust-ai-ide-events"];

fn test(root: &Path) -> Result<()> {
    run(cargo(root).args(["test", "--workspace", "--locked"]))?;
    // `--cfg perflab_loom` swaps the lock-free code's atomics for loom's, so the loom
    // tests build apart (their own target dir) and in release (loom explores many
    // interleavings).
    for krate in LOOM_CRATES {
        run(cargo(root)
            .args([
                "test",
                "--locked",
                "--release",
                "--lib",
                "-p",
                krate,
                "loom",
            ])
            .env("RUSTFLAGS", "--cfg perflab_loom")
            .env("CARGO_TARGET_DIR", target_dir(root).join("loom")))?;
    }
    Ok(())
}

fn setup(root: &Path) -> Result<()> {
    let mut missing = Vec::new();

    let wanted = locked_version(root, "gungraun")?;
    match tool_version("gungraun-runner") {
        Some(found) if found == wanted => println!("ok       gungraun-runner {found}"),
        found => {
            println!(
                "install  gungraun-runner {wanted} (found: {})",
                found.as_deref().unwrap_or("none")
            );
            run(Command::new("cargo").args([
                "install",
                "--locked",
                "--force",
                "gungraun-runner",
                "--version",
                &wanted,
            ]))?;
        }
    }

    for (tool, package, purpose) in [
        (
            "valgrind",
            "valgrind",
            "callgrind scenarios (instruction counts)",
        ),
        ("redis-server", "redis-server", "cache scenarios and tests"),
        ("promtool", "prometheus", "monitoring alert-rule tests"),
    ] {
        if on_path(tool) {
            println!("ok       {tool}");
        } else {
            println!("missing  {tool}: needed for {purpose}");
            missing.push(package);
        }
    }
    if vulkan_loader_present() {
        println!("ok       Vulkan loader (libvulkan.so.1)");
    } else {
        println!("missing  Vulkan loader: needed for GPU scenarios (software adapter: lavapipe)");
        missing.extend(["libvulkan1", "mesa-vulkan-drivers"]);
    }

    if missing.is_empty() {
        println!("\neverything perflab uses is installed");
    } else {
        println!(
            "\ninstall the rest with:\n  sudo apt-get install {}",
            missing.join(" ")
        );
    }
    Ok(())
}

/// The version of `package` that Cargo.lock pins; the gungraun runner must match it exactly.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let path = root.join("Cargo.lock");
    let lock = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == name_line
            && let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    bail!("{}: no locked version of {package}", path.display())
}

/// The version a `--version` call prints as its last word, if the tool runs at all.
fn tool_version(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().last().map(str::to_owned)
}

fn on_path(tool: &str) -> bool {
    env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// Asks the dynamic linker's cache, which knows every library folder of this system.
fn vulkan_loader_present() -> bool {
    Command::new("ldconfig")
        .arg("-p")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("libvulkan.so.1"))
}

fn suite_names(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("scenarios").join("suites");
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether suite `name` declares `[requirements] gpu = true` (perflab validates the rest of
/// the file when it runs it).
fn suite_needs_gpu(root: &Path, name: &str) -> Result<bool> {
    let path = root
        .join("scenarios")
        .join("suites")
        .join(format!("{name}.toml"));
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(table
        .get("requirements")
        .and_then(|r| r.get("gpu"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(false))
}

fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    cmd.current_dir(root);
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpu_runner_picks_the_suites_that_declare_a_gpu() {
        let root = tempfile::tempdir().unwrap();
        let suites = root.path().join("scenarios").join("suites");
        fs::create_dir_all(&suites).unwrap();
        fs::write(
            suites.join("gpu.toml"),
            "name = \"gpu\"\n[requirements]\ngpu = true\n",
        )
        .unwrap();
        fs::write(
            suites.join("cpu.toml"),
            "name = \"cpu\"\n[requirements]\ngpu = false\n",
        )
        .unwrap();
        fs::write(suites.join("plain.toml"), "name = \"plain\"\n").unwrap();
        fs::write(suites.join("broken.toml"), "name = \n").unwrap();
        assert!(suite_needs_gpu(root.path(), "gpu").unwrap());
        assert!(!suite_needs_gpu(root.path(), "cpu").unwrap());
        assert!(!suite_needs_gpu(root.path(), "plain").unwrap());
        let err = format!("{:#}", suite_needs_gpu(root.path(), "broken").unwrap_err());
        assert!(err.contains("broken.toml"), "{err}");
    }

    #[test]
    fn the_committed_suites_split_into_cpu_and_gpu_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert!(suite_needs_gpu(root, "gpu").unwrap());
        assert!(!suite_needs_gpu(root, "memory").unwrap());
    }
}
