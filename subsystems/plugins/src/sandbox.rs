//! Sandboxed execution on wasmtime: one engine with epoch interruption (driven by a
//! background ticker thread) and optional fuel, the pooling allocator, per-store memory and
//! table limits, and the `ide` host API linked per plugin from its declared capabilities.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{
    Caller, Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Memory, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap,
    TypedFunc, WasmParams, WasmResults,
};

use crate::error::PluginError;
use crate::manifest::{Capability, PluginManifest, ResourceLimits};
use crate::scanner::{HOST_MODULE, SandboxLimits};

/// Log records kept per instance; later ones are counted, not stored.
const MAX_LOG_RECORDS: usize = 64;
/// Longest log message kept, in bytes.
const MAX_LOG_BYTES: usize = 4096;
/// Tick timestamps remembered, to time how long after its deadline a call stopped.
const TICK_RING: usize = 64;

/// How plugins run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Period of the epoch ticker thread: the granularity of CPU limits.
    pub epoch_tick: Duration,
    /// Epoch ticks a call (or an instantiation) may run before it is interrupted.
    pub call_budget_ticks: u64,
    /// Fuel per call (deterministic CPU limit), or `None` to run without fuel metering.
    pub fuel_per_call: Option<u64>,
    /// Instance slots of the pooling allocator, or `None` to allocate on demand.
    pub pooling_slots: Option<u32>,
}

impl Default for RuntimeConfig {
    /// 1 ms ticks, a 100-tick (100 ms) budget, no fuel, 64 pooled slots.
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(1),
            call_budget_ticks: 100,
            fuel_per_call: None,
            pooling_slots: Some(64),
        }
    }
}

impl RuntimeConfig {
    /// The wasmtime configuration of this runtime (also used by the raw-wasmtime anchors,
    /// so that they compare like with like).
    pub fn engine_config(&self, limits: &SandboxLimits) -> Config {
        let mut c = Config::new();
        c.epoch_interruption(true);
        c.consume_fuel(self.fuel_per_call.is_some());
        if let Some(slots) = self.pooling_slots {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(slots)
                .total_memories(slots)
                .total_tables(slots)
                .max_memories_per_module(1)
                .max_tables_per_module(1)
                .max_memory_size(usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX))
                .table_elements(usize::try_from(limits.max_table_elements).unwrap_or(usize::MAX));
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        c
    }
}

/// Severity of a plugin log record (the `level` argument of `ide.log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// 0.
    Debug,
    /// 1.
    Info,
    /// 2.
    Warn,
    /// 3 and above.
    Error,
}

/// One message a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its level.
    pub level: LogLevel,
    /// The text (lossy UTF-8, at most 4 KiB).
    pub message: String,
}

/// The wasm engine shared by every plugin, with its epoch ticker.
#[derive(Clone)]
pub struct PluginRuntime {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Engine,
    config: RuntimeConfig,
    limits: SandboxLimits,
    ticks: Arc<TickState>,
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the channel wakes the ticker, which then exits.
        self.stop.take();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("config", &self.shared.config)
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

struct TickState {
    count: AtomicU64,
    /// Nanoseconds since `origin` of tick `n`, at `n % TICK_RING`.
    times: [AtomicU64; TICK_RING],
    origin: Instant,
}

impl TickState {
    fn time_of(&self, tick: u64) -> Option<Instant> {
        let now = self.count.load(Ordering::Acquire);
        if tick == 0 || tick > now || now - tick >= TICK_RING as u64 {
            return None;
        }
        let ns = self.times[(tick % TICK_RING as u64) as usize].load(Ordering::Acquire);
        Some(self.origin + Duration::from_nanos(ns))
    }
}

impl PluginRuntime {
    /// Creates the engine and starts the epoch ticker thread.
    pub fn new(config: RuntimeConfig, limits: SandboxLimits) -> Result<Self, PluginError> {
        if config.epoch_tick.is_zero() || config.call_budget_ticks == 0 {
            return Err(PluginError::Engine(
                "epoch_tick and call_budget_ticks must be positive".into(),
            ));
        }
        let engine = Engine::new(&config.engine_config(&limits))
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        let ticks = Arc::new(TickState {
            count: AtomicU64::new(0),
            times: std::array::from_fn(|_| AtomicU64::new(0)),
            origin: Instant::now(),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let ticker = {
            let engine = engine.clone();
            let ticks = Arc::clone(&ticks);
            let period = config.epoch_tick;
            std::thread::Builder::new()
                .name("plugin-epoch-ticker".into())
                .spawn(move || run_ticker(&engine, &ticks, period, &stopped))
                .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?
        };
        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                config,
                limits,
                ticks,
                stop: Some(stop),
                ticker: Some(ticker),
            }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// The sandbox ceilings.
    pub fn limits(&self) -> &SandboxLimits {
        &self.shared.limits
    }

    /// Epoch ticks since the runtime started.
    pub fn current_tick(&self) -> u64 {
        self.shared.ticks.count.load(Ordering::Acquire)
    }

    /// When tick `tick` happened, if it is among the last 64.
    pub fn tick_instant(&self, tick: u64) -> Option<Instant> {
        self.shared.ticks.time_of(tick)
    }

    /// Compiles `wasm` for the plugin of `manifest` and links it against the host functions
    /// of its declared capabilities only (so an undeclared import cannot link, whatever the
    /// scanner said). `config` is what `ide.config_get` reads.
    pub fn compile(
        &self,
        manifest: &PluginManifest,
        wasm: &[u8],
        config: BTreeMap<String, String>,
    ) -> Result<CompiledPlugin, PluginError> {
        let module = Module::new(&self.shared.engine, wasm)
            .map_err(|e| PluginError::Compile(e.to_string()))?;
        let linker = self.linker(&manifest.compatibility.capabilities)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| PluginError::Link(format!("{e:#}")))?;
        Ok(CompiledPlugin {
            id: manifest.id.to_string().into(),
            pre,
            limits: manifest.limits,
            config: Arc::new(config),
            runtime: self.clone(),
        })
    }

    fn linker(&self, caps: &BTreeSet<Capability>) -> Result<Linker<HostState>, PluginError> {
        let mut linker = Linker::new(&self.shared.engine);
        let link = |e: wasmtime::Error| PluginError::Link(e.to_string());
        if caps.contains(&Capability::Log) {
            linker
                .func_wrap(HOST_MODULE, "log", host_log)
                .map_err(link)?;
        }
        if caps.contains(&Capability::Config) {
            linker
                .func_wrap(HOST_MODULE, "config_get", host_config_get)
                .map_err(link)?;
        }
        Ok(linker)
    }
}

fn run_ticker(engine: &Engine, ticks: &TickState, period: Duration, stopped: &mpsc::Receiver<()>) {
    let mut n: u64 = 0;
    let mut due = ticks.origin + period;
    loop {
        match stopped.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        // A fixed schedule, so that a late wake-up does not push every later tick back; but
        // after a wake-up later than a whole period the schedule restarts from now instead
        // of firing the missed ticks back to back, which would cut a budget short.
        let now = Instant::now();
        due += period;
        if due <= now {
            due = now + period;
        }
        n += 1;
        let ns = u64::try_from(ticks.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        ticks.times[(n % TICK_RING as u64) as usize].store(ns, Ordering::Release);
        // Our count moves before the engine's epoch, so when a guest sees epoch n, tick n's
        // timestamp is already recorded.
        ticks.count.store(n, Ordering::Release);
        engine.increment_epoch();
    }
}

/// A plugin compiled and linked, ready to instantiate (an `InstancePre`: import resolution
/// and type checks are done once, not per instance).
#[derive(Clone)]
pub struct CompiledPlugin {
    id: Arc<str>,
    pre: InstancePre<HostState>,
    limits: ResourceLimits,
    config: Arc<BTreeMap<String, String>>,
    runtime: PluginRuntime,
}

impl fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("id", &self.id)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl CompiledPlugin {
    /// A fresh instance in its own store, with the plugin's memory and table limits (capped
    /// by the sandbox's) and the call budget armed.
    pub fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        let ceilings = self.runtime.limits();
        let memory_limit = self.limits.memory_bytes.min(ceilings.max_memory_bytes);
        let table_limit = self.limits.table_elements.min(ceilings.max_table_elements);
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(memory_limit).unwrap_or(usize::MAX))
            .table_elements(usize::try_from(table_limit).unwrap_or(usize::MAX))
            .instances(1)
            .memories(1)
            .tables(1)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState {
            limiter: SandboxLimiter {
                inner: store_limits,
                memory_limit,
                table_limit,
            },
            config: Arc::clone(&self.config),
            logs: Vec::new(),
            dropped_logs: 0,
            plugin: Arc::clone(&self.id),
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let mut instance = PluginInstance {
            store,
            instance: None,
            runtime: self.runtime.clone(),
        };
        let start = instance.arm()?;
        let created = self.pre.instantiate(&mut instance.store);
        match created {
            Ok(i) => instance.instance = Some(i),
            Err(e) => {
                return Err(match instance.classify(e, start) {
                    PluginError::Trap(m) => PluginError::Instantiate(m),
                    other => other,
                });
            }
        }
        Ok(instance)
    }

    /// Runs the plugin's `transform` on `text` in a fresh instance (nothing survives between
    /// calls) and returns its output.
    pub fn transform(&self, text: &str) -> Result<String, PluginError> {
        self.instantiate()?.transform(text)
    }

    /// The plugin's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A typed export of a plugin, looked up once and called many times.
pub struct PluginFunc<P, R>(TypedFunc<P, R>);

impl<P, R> fmt::Debug for PluginFunc<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PluginFunc")
    }
}

impl<P, R> Clone for PluginFunc<P, R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// A live plugin instance with its own store.
pub struct PluginInstance {
    store: Store<HostState>,
    /// `None` only while instantiating.
    instance: Option<wasmtime::Instance>,
    runtime: PluginRuntime,
}

impl fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginInstance")
            .field("plugin", &self.store.data().plugin)
            .finish_non_exhaustive()
    }
}

impl PluginInstance {
    /// Looks up export `name` with parameters `P` and results `R`.
    pub fn func<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &str,
    ) -> Result<PluginFunc<P, R>, PluginError> {
        let instance = self.live()?;
        instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map(PluginFunc)
            .map_err(|e| PluginError::MissingExport {
                name: name.to_owned(),
                message: e.to_string(),
            })
    }

    /// Calls `f` with a fresh CPU budget (epoch deadline, and fuel when enabled).
    pub fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        f: &PluginFunc<P, R>,
        args: P,
    ) -> Result<R, PluginError> {
        let start = self.arm()?;
        f.0.call(&mut self.store, args)
            .map_err(|e| self.classify(e, start))
    }

    /// Passes `text` through the plugin's `transform` (the `text_transform` ABI: `alloc` the
    /// input in guest memory, write it, call `transform(ptr, len)`, read `(ptr << 32 | len)`).
    pub fn transform(&mut self, text: &str) -> Result<String, PluginError> {
        let len = i32::try_from(text.len())
            .map_err(|_| PluginError::BadOutput("input text is over 2 GiB".into()))?;
        let alloc = self.func::<i32, i32>("alloc")?;
        let transform = self.func::<(i32, i32), i64>("transform")?;
        let memory = self.memory()?;
        let ptr = self.call(&alloc, len)?;
        memory
            .write(&mut self.store, ptr as u32 as usize, text.as_bytes())
            .map_err(|_| {
                PluginError::BadOutput(format!("alloc returned out-of-bounds pointer {ptr}"))
            })?;
        let packed = self.call(&transform, (ptr, len))? as u64;
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let bytes = memory
            .data(&self.store)
            .get(out_ptr..out_ptr.saturating_add(out_len))
            .ok_or_else(|| {
                PluginError::BadOutput(format!(
                    "output range {out_ptr}+{out_len} is outside guest memory"
                ))
            })?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| PluginError::BadOutput(format!("output is not utf-8: {e}")))
    }

    /// What the plugin logged so far.
    pub fn logs(&self) -> &[LogRecord] {
        &self.store.data().logs
    }

    /// Log records dropped because the instance logged more than 64.
    pub fn dropped_logs(&self) -> u64 {
        self.store.data().dropped_logs
    }

    /// Bytes of linear memory the instance has now.
    pub fn memory_size(&mut self) -> Result<usize, PluginError> {
        let memory = self.memory()?;
        Ok(memory.data_size(&self.store))
    }

    fn live(&self) -> Result<wasmtime::Instance, PluginError> {
        self.instance
            .ok_or_else(|| PluginError::Instantiate("instance is not live".into()))
    }

    fn memory(&mut self) -> Result<Memory, PluginError> {
        let instance = self.live()?;
        instance
            .get_memory(&mut self.store, "memory")
            .ok_or_else(|| PluginError::MissingExport {
                name: "memory".into(),
                message: "no exported memory".into(),
            })
    }

    /// Sets the epoch deadline (and fuel) for the next piece of guest code; returns the tick
    /// the budget started at.
    fn arm(&mut self) -> Result<u64, PluginError> {
        let start = self.runtime.current_tick();
        let config = self.runtime.config();
        self.store.set_epoch_deadline(config.call_budget_ticks);
        if let Some(fuel) = config.fuel_per_call {
            self.store
                .set_fuel(fuel)
                .map_err(|e| PluginError::Engine(e.to_string()))?;
        }
        Ok(start)
    }

    fn classify(&self, e: wasmtime::Error, start_tick: u64) -> PluginError {
        match e.downcast_ref::<PluginError>() {
            Some(&PluginError::MemoryLimit { requested, limit }) => {
                return PluginError::MemoryLimit { requested, limit };
            }
            Some(&PluginError::TableLimit { requested, limit }) => {
                return PluginError::TableLimit { requested, limit };
            }
            _ => {}
        }
        let config = self.runtime.config();
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                let stopped = Instant::now();
                let deadline = start_tick + config.call_budget_ticks;
                let now = self.runtime.current_tick();
                let overshoot = self
                    .runtime
                    .tick_instant(deadline)
                    .map_or(Duration::ZERO, |t| stopped.saturating_duration_since(t));
                PluginError::Timeout {
                    budget_ticks: config.call_budget_ticks,
                    budget: config.epoch_tick
                        * u32::try_from(config.call_budget_ticks).unwrap_or(u32::MAX),
                    overshoot_ticks: now.saturating_sub(deadline),
                    overshoot,
                }
            }
            Some(Trap::OutOfFuel) => PluginError::FuelExhausted {
                fuel: config.fuel_per_call.unwrap_or(0),
            },
            _ => PluginError::Trap(format!("{e:#}")),
        }
    }
}

/// Per-store state: limits, the plugin's settings, its log.
pub(crate) struct HostState {
    limiter: SandboxLimiter,
    config: Arc<BTreeMap<String, String>>,
    logs: Vec<LogRecord>,
    dropped_logs: u64,
    plugin: Arc<str>,
}

/// `StoreLimits` (which does the enforcing) plus the limits, so that a refused growth comes
/// back as the [`PluginError`] naming the limit.
struct SandboxLimiter {
    inner: StoreLimits,
    memory_limit: u64,
    table_limit: u64,
}

impl ResourceLimiter for SandboxLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner
            .memory_growing(current, desired, maximum)
            .map_err(|_| {
                wasmtime::Error::new(PluginError::MemoryLimit {
                    requested: desired as u64,
                    limit: effective_limit(self.memory_limit, maximum),
                })
            })
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner
            .table_growing(current, desired, maximum)
            .map_err(|_| {
                wasmtime::Error::new(PluginError::TableLimit {
                    requested: desired as u64,
                    limit: effective_limit(self.table_limit, maximum),
                })
            })
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The limit a refused growth ran into: the sandbox's, or the module's declared maximum
/// when that is lower.
fn effective_limit(sandbox: u64, declared: Option<usize>) -> u64 {
    sandbox.min(declared.map_or(u64::MAX, |m| m as u64))
}

/// Copies `len` bytes at `ptr` out of the caller's exported memory.
fn guest_bytes(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    what: &str,
) -> wasmtime::Result<Vec<u8>> {
    let memory = exported_memory(caller)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    memory
        .data(&*caller)
        .get(start..start.saturating_add(len))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| wasmtime::format_err!("{what}: range {start}+{len} is outside guest memory"))
}

fn exported_memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    caller
        .get_export("memory")
        .and_then(wasmtime::Extern::into_memory)
        .ok_or_else(|| wasmtime::format_err!("the plugin exports no memory"))
}

/// `ide.log(level, ptr, len)`.
fn host_log(
    mut caller: Caller<'_, HostState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let len = len.clamp(0, MAX_LOG_BYTES as i32);
    let bytes = guest_bytes(&mut caller, ptr, len, "ide.log")?;
    let message = String::from_utf8_lossy(&bytes).into_owned();
    let level = match level {
        i32::MIN..=0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    let state = caller.data_mut();
    tracing::debug!(plugin = %state.plugin, ?level, "{message}");
    if state.logs.len() < MAX_LOG_RECORDS {
        state.logs.push(LogRecord { level, message });
    } else {
        state.dropped_logs += 1;
    }
    Ok(())
}

/// `ide.config_get(key_ptr, key_len, out_ptr, out_cap) -> len`: copies up to `out_cap` bytes
/// of the setting into guest memory and returns its full length, or -1 when it is not set.
fn host_config_get(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    out_ptr: i32,
    out_cap: i32,
) -> wasmtime::Result<i32> {
    let key = guest_bytes(&mut caller, key_ptr, key_len, "ide.config_get key")?;
    let config = Arc::clone(&caller.data().config);
    let Some(value) = std::str::from_utf8(&key).ok().and_then(|k| config.get(k)) else {
        return Ok(-1);
    };
    let n = value.len().min(out_cap.max(0) as usize);
    let memory = exported_memory(&mut caller)?;
    memory
        .write(&mut caller, out_ptr as u32 as usize, &value.as_bytes()[..n])
        .map_err(|_| {
            wasmtime::format_err!("ide.config_get: output buffer is outside guest memory")
        })?;
    Ok(i32::try_from(value.len()).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    fn runtime(config: RuntimeConfig) -> PluginRuntime {
        PluginRuntime::new(config, SandboxLimits::default()).expect("runtime")
    }

    fn uppercase(rt: &PluginRuntime, prefix: &str) -> CompiledPlugin {
        let wasm = wat::parse_str(samples::UPPERCASE_WAT).expect("wat");
        rt.compile(
            &samples::uppercase_manifest(),
            &wasm,
            [("prefix".to_owned(), prefix.to_owned())].into(),
        )
        .expect("compiles")
    }

    #[test]
    fn transform_passes_text_through_guest_memory_and_uses_the_host_api() {
        for pooling in [Some(4), None] {
            let rt = runtime(RuntimeConfig {
                pooling_slots: pooling,
                ..RuntimeConfig::default()
            });
            let p = uppercase(&rt, ">> ");
            let mut inst = p.instantiate().expect("instance");
            assert_eq!(
                inst.transform("hello, wasm").expect("runs"),
                ">> HELLO, WASM"
            );
            assert_eq!(inst.logs().len(), 1);
            assert_eq!(inst.logs()[0].message, "transformed text");
            let big = "x".repeat(200_000);
            assert_eq!(
                inst.transform(&big).expect("grows within limits"),
                format!(">> {}", "X".repeat(200_000))
            );
            let add = inst.func::<(i32, i32), i32>("add").expect("export");
            assert_eq!(inst.call(&add, (2, 40)).expect("call"), 42);
        }
    }

    #[test]
    fn runaway_is_interrupted_by_the_epoch_deadline() {
        let rt = runtime(RuntimeConfig {
            call_budget_ticks: 5,
            ..RuntimeConfig::default()
        });
        let wasm = wat::parse_str(samples::RUNAWAY_WAT).expect("wat");
        let p = rt
            .compile(&samples::runaway_manifest(), &wasm, BTreeMap::new())
            .expect("compiles");
        let err = p.transform("x").expect_err("interrupted");
        assert!(
            matches!(
                err,
                PluginError::Timeout {
                    budget_ticks: 5,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("cpu budget"), "{err}");
        // The host and the engine keep working.
        assert_eq!(uppercase(&rt, "").transform("ok").expect("runs"), "OK");
    }

    #[test]
    fn fuel_stops_a_runaway_deterministically() {
        let rt = runtime(RuntimeConfig {
            fuel_per_call: Some(100_000),
            call_budget_ticks: 10_000,
            ..RuntimeConfig::default()
        });
        let wasm = wat::parse_str(samples::RUNAWAY_WAT).expect("wat");
        let p = rt
            .compile(&samples::runaway_manifest(), &wasm, BTreeMap::new())
            .expect("compiles");
        let err = p.transform("x").expect_err("out of fuel");
        assert!(
            matches!(err, PluginError::FuelExhausted { fuel: 100_000 }),
            "{err}"
        );
        let mut inst = uppercase(&rt, "").instantiate().expect("instance");
        let spin = inst.func::<i32, i32>("spin").expect("export");
        assert!(inst.call(&spin, 100).is_ok());
        assert!(matches!(
            inst.call(&spin, 10_000_000),
            Err(PluginError::FuelExhausted { .. })
        ));
        // Every call gets a fresh budget.
        assert!(inst.call(&spin, 100).is_ok());
    }

    #[test]
    fn memory_growth_past_the_manifest_limit_is_stopped() {
        let rt = runtime(RuntimeConfig::default());
        let mut m = samples::runaway_manifest();
        m.limits.memory_bytes = 2 << 20;
        let wasm = wat::parse_str(include_str!("../tests/it/plugins/grower.wat")).expect("wat");
        let p = rt.compile(&m, &wasm, BTreeMap::new()).expect("compiles");
        let err = p.transform("x").expect_err("stopped");
        assert!(
            matches!(err, PluginError::MemoryLimit { limit, requested } if limit == 2 << 20 && requested > limit),
            "{err}"
        );
    }

    #[test]
    fn undeclared_capability_does_not_link() {
        let rt = runtime(RuntimeConfig::default());
        let mut m = samples::uppercase_manifest();
        m.compatibility.capabilities = [Capability::TextTransform].into();
        let wasm = wat::parse_str(samples::UPPERCASE_WAT).expect("wat");
        let err = rt
            .compile(&m, &wasm, BTreeMap::new())
            .expect_err("link error");
        assert!(matches!(err, PluginError::Link(_)), "{err}");
        assert!(err.to_string().contains("ide"), "{err}");
    }

    #[test]
    fn pool_exhaustion_is_an_error_and_slots_come_back() {
        let rt = runtime(RuntimeConfig {
            pooling_slots: Some(2),
            ..RuntimeConfig::default()
        });
        let p = uppercase(&rt, "");
        let a = p.instantiate().expect("slot 1");
        let b = p.instantiate().expect("slot 2");
        assert!(matches!(p.instantiate(), Err(PluginError::Instantiate(_))));
        drop((a, b));
        assert!(p.instantiate().is_ok());
    }

    #[test]
    fn ticker_records_tick_times() {
        let rt = runtime(RuntimeConfig::default());
        let start = rt.current_tick();
        while rt.current_tick() < start + 3 {
            std::thread::yield_now();
        }
        let t = rt.current_tick();
        let a = rt.tick_instant(t - 1).expect("recent tick");
        let b = rt.tick_instant(t).expect("recent tick");
        assert!(b >= a);
        assert!(rt.tick_instant(t + 10).is_none());
    }
}
