//! Load scenarios of the plugins subsystem: `plugins/install/local` (latency of each
//! installation phase: verify, resolve, check, compile, commit) and
//! `plugins/runaway_stop/epoch` (how long after its deadline an endless loop is stopped, in
//! epoch ticks and in nanoseconds).

use std::collections::BTreeMap;
use std::time::Duration;

use rust_ai_ide_plugins::{
    MarketplaceConfig, PluginError, PluginId, PluginMarketplace, PluginPackage, PluginRuntime,
    RegistrySource, RuntimeConfig, SandboxLimits, SigningKey, samples,
};

use super::stats::LatencySummary;
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::error::ScenarioError;

/// Epoch tick of the runaway scenario, and its budget in ticks.
const RUNAWAY_TICK: Duration = Duration::from_millis(1);
const RUNAWAY_BUDGET_TICKS: u64 = 2;

/// Runs the `plugins/*` load scenarios in `ids`.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    for &id in ids {
        let res = match id {
            "plugins/install/local" => install(opts),
            "plugins/runaway_stop/epoch" => runaway_stop(opts),
            _ => continue,
        };
        outcome.record(id, "perflab", res);
    }
    Ok(())
}

/// Installs `n` distinct copies of the sample transformer (ids `bench-<i>`) from packages in
/// memory into a fresh marketplace; every phase is timed by the marketplace itself.
fn install(opts: LoadOptions) -> Result<BTreeMap<String, Measure>, String> {
    let n = if opts.quick { 10 } else { 100 };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let key = SigningKey::from_bytes(&[5; 32]);
    let mut config = MarketplaceConfig::new(
        dir.path().join("installed"),
        RegistrySource::Local(dir.path().join("registry")),
    );
    config.trusted_keys = vec![key.verifying_key().to_bytes()];
    let market = PluginMarketplace::new(config).map_err(|e| e.to_string())?;
    let packages = (0..n)
        .map(|i| {
            let mut m = samples::uppercase_manifest();
            m.id = PluginId::new(format!("bench-{i}"))?;
            PluginPackage::build(&m, samples::UPPERCASE_WAT, &key).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let rt = super::tokio_runtime(1).map_err(|e| e.to_string())?;
    let mut phases: [Vec<u64>; 6] = Default::default();
    for pkg in packages {
        let res = rt
            .block_on(market.install_plugin(pkg))
            .map_err(|e| e.to_string())?;
        let t = res.timings;
        for (slot, d) in
            phases
                .iter_mut()
                .zip([t.total(), t.verify, t.resolve, t.check, t.compile, t.commit])
        {
            slot.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    let mut m = BTreeMap::new();
    m.insert("latency".into(), Measure::point(mean(&phases[0])));
    for (name, v) in [
        "verify_time",
        "resolve_time",
        "check_time",
        "compile_time",
        "commit_time",
    ]
    .into_iter()
    .zip(&phases[1..])
    {
        m.insert(name.into(), Measure::point(mean(v)));
    }
    let s = LatencySummary::from_samples(&mut phases[0]).ok_or("no installs")?;
    m.insert("latency_p50".into(), Measure::bounded(s.p50));
    m.insert("latency_p99".into(), Measure::bounded(s.p99));
    Ok(m)
}

/// Calls the runaway sample's `run` with a 2-tick budget on 1 ms ticks, `n` times; each stop
/// reports how many ticks after the deadline tick it came, and how many nanoseconds.
fn runaway_stop(opts: LoadOptions) -> Result<BTreeMap<String, Measure>, String> {
    let n = if opts.quick { 50 } else { 500 };
    let rt = PluginRuntime::new(
        RuntimeConfig {
            epoch_tick: RUNAWAY_TICK,
            call_budget_ticks: RUNAWAY_BUDGET_TICKS,
            ..RuntimeConfig::default()
        },
        SandboxLimits::default(),
    )
    .map_err(|e| e.to_string())?;
    let key = SigningKey::from_bytes(&[6; 32]);
    let pkg = PluginPackage::build(&samples::runaway_manifest(), samples::RUNAWAY_WAT, &key)
        .map_err(|e| e.to_string())?;
    let plugin = rt
        .compile(pkg.manifest(), pkg.module(), BTreeMap::new())
        .map_err(|e| e.to_string())?;
    let mut inst = plugin.instantiate().map_err(|e| e.to_string())?;
    let run = inst.func::<(), ()>("run").map_err(|e| e.to_string())?;
    let mut ticks = Vec::with_capacity(n);
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        match inst.call(&run, ()) {
            Err(PluginError::Timeout {
                overshoot_ticks,
                overshoot,
                ..
            }) => {
                ticks.push(overshoot_ticks);
                ns.push(u64::try_from(overshoot.as_nanos()).unwrap_or(u64::MAX));
            }
            other => {
                return Err(format!(
                    "runaway was not stopped by the deadline: {other:?}"
                ));
            }
        }
    }
    let max_ticks = ticks.iter().copied().max().unwrap_or(0);
    let mean_ticks = ticks.iter().sum::<u64>() as f64 / n as f64;
    let s = LatencySummary::from_samples(&mut ns).ok_or("no runs")?;
    let mut m = BTreeMap::new();
    m.insert("stop_ticks".into(), Measure::point(max_ticks as f64));
    m.insert("stop_ticks_mean".into(), Measure::point(mean_ticks));
    m.insert("latency_p50".into(), Measure::bounded(s.p50));
    m.insert("latency_p99".into(), Measure::bounded(s.p99));
    m.insert("latency_p999".into(), Measure::bounded(s.p999));
    Ok(m)
}
