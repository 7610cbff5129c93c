//! The GPU runner: the adapter the scenario runner reports, GPU scenarios run or skipped by it,
//! and the adapter in the runner fingerprint.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use perflab::{
    BenchmarkingFramework, CatalogError, CommandOutput, CommandPurpose, CommandSpec, Engine,
    FrameworkConfig, GitInfo, GpuDeviceType,
};

const CATALOG: &str = r#"[
  {"id": "accel/saxpy/n1m", "engine": "load", "bench": null, "subjects": ["perflab", "candle_cpu"], "requires": ["gpu"]}
]"#;

const SUITE: &str = r#"name = "gpu"
description = "gpu test suite"

[requirements]
cpu = false
gpu = true

[[tests]]
id = "accel/saxpy/n1m"
"#;

/// What `perflab-scenarios adapter --json` prints on a machine with Mesa's lavapipe.
const LAVAPIPE: &str = r#"{
  "name": "llvmpipe (LLVM 15.0.6, 256 bits)",
  "vendor": 65541,
  "device_type": "Cpu",
  "driver": "llvmpipe on Vulkan"
}"#;

const BMF: &str = r#"{"accel/saxpy/n1m@perflab": {"throughput": {"value": 1200.0}},
 "accel/saxpy/n1m@candle_cpu": {"throughput": {"value": 900.0}}}"#;

/// A framework over a fake cargo whose scenario runner reports `adapter`.
fn framework(root: &Path, adapter: &'static str) -> BenchmarkingFramework {
    let suites = root.join("scenarios/suites");
    fs::create_dir_all(&suites).unwrap();
    fs::write(suites.join("gpu.toml"), SUITE).unwrap();
    let mut config = FrameworkConfig::new(root);
    config.progress = false;
    let fake = move |spec: &CommandSpec| -> io::Result<CommandOutput> {
        match &spec.purpose {
            CommandPurpose::Catalog => Ok(CommandOutput::ok(CATALOG)),
            CommandPurpose::Adapter => Ok(CommandOutput::ok(adapter)),
            CommandPurpose::Engine {
                engine: Engine::Load,
                ..
            } => {
                fs::write(spec.arg_after("--out").expect("--out FILE"), BMF)?;
                Ok(CommandOutput::ok(""))
            }
            other => panic!("unexpected command {other:?}"),
        }
    };
    BenchmarkingFramework::new(config)
        .with_command_runner(Arc::new(fake))
        .with_git(GitInfo {
            commit: Some("0123456789abcdef".into()),
            branch: Some("main".into()),
        })
}

#[tokio::test]
async fn a_gpu_runner_measures_on_the_probed_adapter_and_fingerprints_it() {
    let root = tempfile::tempdir().unwrap();
    let fw = framework(root.path(), LAVAPIPE);
    let adapter = fw.gpu_adapter().unwrap().expect("lavapipe is reported");
    assert_eq!(adapter.device_type, GpuDeviceType::Cpu);
    assert!(adapter.is_software());

    let cpu_run = fw.run_suite("gpu").await.unwrap().run;
    let gpu_run = fw
        .clone()
        .with_gpu_adapter(Some(adapter.clone()))
        .run_suite("gpu")
        .await
        .unwrap()
        .run;

    // Without the adapter the scenario is skipped and says why; with it, it is measured.
    assert!(cpu_run.results.is_empty(), "{:#?}", cpu_run.results);
    assert_eq!(cpu_run.skipped.len(), 1);
    assert!(cpu_run.skipped[0].reason.contains("requires gpu"));
    assert!(gpu_run.skipped.is_empty(), "{:#?}", gpu_run.skipped);
    assert_eq!(gpu_run.results.len(), 2, "{:#?}", gpu_run.results);

    // The adapter is part of the runner: another fingerprint, described as software.
    assert_eq!(gpu_run.runner.gpu.as_ref(), Some(&adapter));
    assert_eq!(cpu_run.runner.gpu, None);
    assert_ne!(gpu_run.runner.fingerprint, cpu_run.runner.fingerprint);
    assert!(
        gpu_run.runner.describe().contains("software"),
        "{}",
        gpu_run.runner.describe()
    );
}

#[test]
fn no_adapter_is_none_and_a_malformed_description_names_line_and_column() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(framework(root.path(), "null").gpu_adapter().unwrap(), None);

    let err = framework(
        root.path(),
        "{\n  \"name\": \"x\",\n  \"vendor\": \"ten\"\n}",
    )
    .gpu_adapter()
    .unwrap_err();
    assert!(
        matches!(&err, CatalogError::InvalidAdapter { reason } if reason.contains("line 3")),
        "{err}"
    );
}
