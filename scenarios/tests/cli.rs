//! End-to-end tests of the `perflab-scenarios` binary: the catalog JSON and the load command.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perflab-scenarios"))
}

#[test]
fn list_json_is_the_catalog() {
    let out = bin().args(["list", "--json"]).output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json array");
    let entries = v.as_array().expect("array");
    assert_eq!(entries.len(), perflab_scenarios::catalog().len());
    let first = &entries[0];
    for key in ["id", "engine", "bench", "package", "subjects", "requires"] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    assert!(
        entries
            .iter()
            .any(|e| e["id"] == "memory/pool_cycle_ir/kib16"
                && e["engine"] == "callgrind"
                && e["bench"] == "memory_callgrind")
    );
}

#[test]
fn load_with_no_match_writes_empty_bmf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("load.json");
    let out = bin()
        .args(["load", "--filter", "^nothing/matches$", "--out"])
        .arg(&out_path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).expect("written")).expect("json");
    assert_eq!(v, serde_json::json!({}));
}

#[test]
fn load_rejects_a_bad_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args(["load", "--filter", "(", "--out"])
        .arg(dir.path().join("x.json"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--filter"));
}

#[test]
fn quick_load_writes_bmf_for_every_subject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("load.json");
    let out = bin()
        .args([
            "load",
            "--quick",
            "--filter",
            "vmm_random_read/prefetch$",
            "--out",
        ])
        .arg(&out_path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).expect("written")).expect("json");
    let obj = v.as_object().expect("object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "memory/vmm_random_read/prefetch@perflab",
            "memory/vmm_random_read/prefetch@read"
        ]
    );
    for measures in obj.values() {
        for name in ["throughput", "latency_p50", "latency_p99", "latency_p999"] {
            let value = measures[name]["value"].as_f64().expect("numeric value");
            assert!(value > 0.0, "{name} = {value}");
        }
        let p50 = measures["latency_p50"]["value"]
            .as_f64()
            .unwrap_or_default();
        let p999 = measures["latency_p999"]["value"]
            .as_f64()
            .unwrap_or_default();
        assert!(p50 <= p999);
    }
}
