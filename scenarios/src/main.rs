//! The `perflab-scenarios` binary: prints the scenario catalog and runs the load scenarios.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use perflab_scenarios::{LoadOptions, catalog, run_load};
use regex::Regex;

/// perflab's scenarios: the catalog the harness reads and the load scenarios it runs.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every scenario: id, engine, bench target, subjects, requirements.
    List {
        /// Print a JSON array (what the harness reads) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the load scenarios and write their results as Bencher Metric Format JSON.
    ///
    /// Scenarios whose requirement is missing are left out and listed on stderr as
    /// `skipped: <id>: <reason>`; a subject that fails is listed as `failed: <id>@<subject>:
    /// <reason>`, the others still run and are written, and the exit status is 1.
    Load {
        /// Only run scenarios whose id matches this regular expression.
        #[arg(long, value_name = "RE")]
        filter: Option<String>,
        /// Less data, fewer operations, shorter time bounds.
        #[arg(long)]
        quick: bool,
        /// Where to write the BMF JSON (written atomically).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the GPU adapter the GPU scenarios run on (wgpu's best adapter, software ones
    /// included): name, PCI vendor id, device type and driver; `null` (with --json) when
    /// there is none or this binary was built without the `accel` feature.
    Adapter {
        /// Print JSON (what the harness reads) instead of a line of text.
        #[arg(long)]
        json: bool,
    },
}

/// The adapter as the harness's runner fingerprint reads it.
#[derive(Debug, serde::Serialize)]
struct Adapter {
    name: String,
    vendor: u32,
    device_type: String,
    driver: String,
}

#[cfg(feature = "accel")]
fn adapter() -> Option<Adapter> {
    rust_ai_ide_accel::detect_adapter().map(|a| Adapter {
        name: a.name,
        vendor: a.vendor,
        device_type: a.device_type,
        driver: format!("{} on {}", a.driver, a.backend),
    })
}

#[cfg(not(feature = "accel"))]
fn adapter() -> Option<Adapter> {
    eprintln!("perflab-scenarios was built without the `accel` feature: no GPU adapter probe");
    None
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::List { json } => {
            let cat = catalog();
            if json {
                println!("{}", serde_json::to_string_pretty(&cat)?);
            } else {
                for s in &cat {
                    let engine = serde_json::to_value(s.engine)?;
                    println!(
                        "{:<40} {:<10} {:<18} {}",
                        s.id,
                        engine.as_str().unwrap_or_default(),
                        s.bench.as_deref().unwrap_or("-"),
                        s.subjects.join(",")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Load { filter, quick, out } => {
            let filter = filter
                .as_deref()
                .map(Regex::new)
                .transpose()
                .context("invalid --filter regular expression")?;
            let outcome = run_load(filter.as_ref(), LoadOptions { quick })?;
            for (id, reason) in &outcome.skipped {
                eprintln!("skipped: {id}: {reason}");
            }
            for (id, reason) in &outcome.failed {
                eprintln!("failed: {id}: {reason}");
            }
            outcome
                .bmf
                .write_atomic(&out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(if outcome.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Adapter { json } => {
            let found = adapter();
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if let Some(a) = &found {
                println!(
                    "{} (vendor {:#06x}, {}, {})",
                    a.name, a.vendor, a.device_type, a.driver
                );
            } else {
                println!("no GPU adapter");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
