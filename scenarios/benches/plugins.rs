//! Criterion wall-time benches of the plugin sandbox: instantiation (pooling and on demand)
//! against raw wasmtime, the call overhead of a trivial export against raw wasmtime and a
//! native function, and the slowdown of a compute loop under epochs and under fuel.
//!
//! Naming (read by the harness): group = scenario id, function = subject. The raw-wasmtime
//! anchors use the sandbox's own engine configuration (`RuntimeConfig::engine_config`).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rust_ai_ide_plugins::{
    CompiledPlugin, PluginPackage, PluginRuntime, RuntimeConfig, SandboxLimits, SigningKey, samples,
};
use wasmtime::{Caller, Config, Engine, InstancePre, Linker, Module, Store};

/// Iterations of the `spin` loop in the slowdown benches.
const SPIN: i32 = 100_000;

/// The sample transformer's wasm binary.
fn uppercase_wasm() -> Vec<u8> {
    let key = SigningKey::from_bytes(&[1; 32]);
    PluginPackage::build(&samples::uppercase_manifest(), samples::UPPERCASE_WAT, &key)
        .expect("sample package")
        .module()
        .to_vec()
}

fn sandbox(config: RuntimeConfig) -> (PluginRuntime, CompiledPlugin) {
    let rt = PluginRuntime::new(config, SandboxLimits::default()).expect("runtime");
    let plugin = rt
        .compile(
            &samples::uppercase_manifest(),
            &uppercase_wasm(),
            BTreeMap::new(),
        )
        .expect("compiles");
    (rt, plugin)
}

/// Raw wasmtime: the same module and host imports (doing nothing) on an engine from `config`.
fn raw(config: &Config) -> (Engine, InstancePre<()>) {
    let engine = Engine::new(config).expect("engine");
    let module = Module::new(&engine, uppercase_wasm()).expect("module");
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap("ide", "log", |_: Caller<'_, ()>, _: i32, _: i32, _: i32| {})
        .expect("log");
    linker
        .func_wrap(
            "ide",
            "config_get",
            |_: Caller<'_, ()>, _: i32, _: i32, _: i32, _: i32| -1i32,
        )
        .expect("config_get");
    let pre = linker.instantiate_pre(&module).expect("links");
    (engine, pre)
}

fn raw_store(engine: &Engine, fuel: bool) -> Store<()> {
    let mut store = Store::new(engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    if fuel {
        store.set_fuel(u64::MAX / 2).expect("fuel");
    }
    store
}

fn instantiate(c: &mut Criterion) {
    for (id, slots) in [
        ("plugins/instantiate/pooling", Some(16)),
        ("plugins/instantiate/on_demand", None),
    ] {
        let config = RuntimeConfig {
            pooling_slots: slots,
            ..RuntimeConfig::default()
        };
        let (_rt, plugin) = sandbox(config);
        let (engine, pre) = raw(&config.engine_config(&SandboxLimits::default()));
        let mut group = c.benchmark_group(id);
        group.bench_function("perflab", |b| {
            b.iter(|| black_box(plugin.instantiate().expect("instance")));
        });
        group.bench_function("wasmtime", |b| {
            b.iter(|| {
                let mut store = raw_store(&engine, false);
                let instance = pre.instantiate(&mut store).expect("instance");
                black_box((instance, store))
            });
        });
        group.finish();
    }
}

#[inline(never)]
fn native_add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

fn call_overhead(c: &mut Criterion) {
    let config = RuntimeConfig::default();
    let (_rt, plugin) = sandbox(config);
    let mut inst = plugin.instantiate().expect("instance");
    let add = inst.func::<(i32, i32), i32>("add").expect("add");
    let (engine, pre) = raw(&config.engine_config(&SandboxLimits::default()));
    let mut store = raw_store(&engine, false);
    let raw_inst = pre.instantiate(&mut store).expect("instance");
    let raw_add = raw_inst
        .get_typed_func::<(i32, i32), i32>(&mut store, "add")
        .expect("add");
    let mut group = c.benchmark_group("plugins/call_overhead/trivial");
    group.bench_function("perflab", |b| {
        b.iter(|| black_box(inst.call(&add, (black_box(1), black_box(2))).expect("call")));
    });
    group.bench_function("wasmtime", |b| {
        b.iter(|| {
            black_box(
                raw_add
                    .call(&mut store, (black_box(1), black_box(2)))
                    .expect("call"),
            )
        });
    });
    group.bench_function("native", |b| {
        b.iter(|| black_box(native_add(black_box(1), black_box(2))));
    });
    group.finish();
}

fn slowdown(c: &mut Criterion) {
    let unmetered = {
        let (engine, pre) = raw(&Config::new());
        let mut store = Store::new(&engine, ());
        let inst = pre.instantiate(&mut store).expect("instance");
        let spin = inst
            .get_typed_func::<i32, i32>(&mut store, "spin")
            .expect("spin");
        (store, spin)
    };
    let (mut raw_store_, raw_spin) = unmetered;
    for (id, fuel) in [
        ("plugins/slowdown/epoch", None),
        ("plugins/slowdown/fuel", Some(u64::MAX / 2)),
    ] {
        let (_rt, plugin) = sandbox(RuntimeConfig {
            fuel_per_call: fuel,
            call_budget_ticks: 1_000_000,
            ..RuntimeConfig::default()
        });
        let mut inst = plugin.instantiate().expect("instance");
        let spin = inst.func::<i32, i32>("spin").expect("spin");
        let mut group = c.benchmark_group(id);
        group.bench_function("perflab", |b| {
            b.iter(|| black_box(inst.call(&spin, black_box(SPIN)).expect("call")));
        });
        group.bench_function("unmetered", |b| {
            b.iter(|| {
                black_box(
                    raw_spin
                        .call(&mut raw_store_, black_box(SPIN))
                        .expect("call"),
                )
            });
        });
        group.finish();
    }
}

criterion_group!(benches, instantiate, call_overhead, slowdown);
criterion_main!(benches);
