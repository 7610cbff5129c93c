//! `HardwareCapabilities`: CPU features, cores, memory bandwidth and kernel speeds, measured once.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use crate::precision::PrecisionLevel;
use crate::quantized::quantize_weight;
use crate::sampling::{Sampler, WeightDistribution};

/// Output rows and input width of the probe matrix timed per precision: 1M weights, 4 MiB
/// in f32, more than a core's L2, so the M=1 timing includes streaming weights from L3 or
/// memory as a real model's matvec does.
const PROBE_ROWS: usize = 512;
const PROBE_K: usize = 2048;
/// The larger batch the probe times, to see how a kernel's cost grows with rows.
const PROBE_BATCH: usize = 16;
/// Minimum timed span per measurement: long enough to average over timer resolution and
/// a few scheduler ticks, short enough that detection takes well under a second.
const PROBE_SPAN: Duration = Duration::from_millis(8);
/// Bytes copied by the bandwidth probe: 32 MiB, beyond the last-level cache of most CPUs.
const BANDWIDTH_BYTES: usize = 32 << 20;

/// Time per weight of one precision's matmul kernel, measured on the probe matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelTiming {
    /// Nanoseconds per weight for one input row (matrix-vector).
    pub ns_per_weight_m1: f64,
    /// Nanoseconds per weight for a batch of 16 rows.
    pub ns_per_weight_m16: f64,
}

impl KernelTiming {
    /// Nanoseconds per weight for `rows` input rows: linear between (and beyond) the two
    /// measured batch sizes, since a kernel's cost is a fixed part (reading the weights)
    /// plus a part per row.
    pub fn ns_per_weight(&self, rows: usize) -> f64 {
        let per_row = (self.ns_per_weight_m16 - self.ns_per_weight_m1) / (PROBE_BATCH - 1) as f64;
        (self.ns_per_weight_m1 + per_row.max(0.0) * rows.saturating_sub(1) as f64).max(0.0)
    }
}

/// What the CPU offers, as measured in this process.
///
/// [`HardwareCapabilities::detect`] measures once and caches the result; the fields are
/// public so that a caller (or a test) can describe another machine.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareCapabilities {
    /// AVX2 (x86): candle's Q8_0/Q4_0/Q4_K dot products need it with FMA.
    pub avx2: bool,
    /// AVX-512 foundation (x86).
    pub avx512f: bool,
    /// F16C (x86): hardware f16 <-> f32 conversion, which the f16 matmul leans on.
    pub f16c: bool,
    /// FMA (x86).
    pub fma: bool,
    /// NEON (aarch64): candle's integer dot products there.
    pub neon: bool,
    /// Hardware threads available to this process.
    pub cores: usize,
    /// Threads candle's CPU kernels use (`CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS`, else
    /// the physical cores).
    pub kernel_threads: usize,
    /// Memory bandwidth in bytes per second (read plus write of a timed copy).
    pub memory_bandwidth: u64,
    /// Measured kernel speed per precision (only those measured).
    pub kernels: BTreeMap<PrecisionLevel, KernelTiming>,
}

impl HardwareCapabilities {
    /// The capabilities of this machine, measured on the first call (a 32 MiB copy and a
    /// few matmuls of a 1M-weight matrix per precision, well under a second in release
    /// builds) and cached for the life of the process.
    pub fn detect() -> &'static Self {
        static DETECTED: OnceLock<HardwareCapabilities> = OnceLock::new();
        DETECTED.get_or_init(Self::measure)
    }

    fn measure() -> Self {
        let (avx2, avx512f, f16c, fma) = x86_features();
        let mut caps = Self {
            avx2,
            avx512f,
            f16c,
            fma,
            neon: cfg!(all(target_arch = "aarch64", target_feature = "neon")),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel_threads: candle_core::utils::get_num_threads(),
            memory_bandwidth: measure_bandwidth(),
            kernels: BTreeMap::new(),
        };
        for p in PrecisionLevel::ALL {
            if let Some(t) = time_kernel(p) {
                caps.kernels.insert(p, t);
            }
        }
        caps
    }

    /// Whether the CPU runs `precision` on a vectorized path: f32 always; f16 with F16C (or
    /// on aarch64); the integer formats where candle has SIMD dot products (AVX2 with FMA,
    /// or NEON). Elsewhere they would run, but on scalar code slower than f32.
    pub fn supports_precision(&self, precision: PrecisionLevel) -> bool {
        match precision {
            PrecisionLevel::FP32 => true,
            PrecisionLevel::FP16 => self.f16c || self.neon,
            PrecisionLevel::INT8 | PrecisionLevel::INT4 | PrecisionLevel::Q4K => {
                (self.avx2 && self.fma) || self.neon
            }
        }
    }

    /// Memory bandwidth in bytes per second.
    pub fn memory_bandwidth(&self) -> u64 {
        self.memory_bandwidth
    }

    /// Predicted time of a forward pass over `weights` linear weights for `rows` input rows
    /// at `precision`, from the measured kernel speed; without a measurement, from the
    /// memory bandwidth (the bytes of the weights, read once).
    pub fn predicted_latency(
        &self,
        precision: PrecisionLevel,
        weights: u64,
        rows: usize,
    ) -> Duration {
        let ns = match self.kernels.get(&precision) {
            Some(t) => t.ns_per_weight(rows) * weights as f64,
            None => {
                let bytes = weights as f64 * precision.bits_per_weight() / 8.0;
                bytes / self.memory_bandwidth.max(1) as f64 * 1e9
            }
        };
        Duration::from_secs_f64(ns.max(0.0) / 1e9)
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn x86_features() -> (bool, bool, bool, bool) {
    (
        std::is_x86_feature_detected!("avx2"),
        std::is_x86_feature_detected!("avx512f"),
        std::is_x86_feature_detected!("f16c"),
        std::is_x86_feature_detected!("fma"),
    )
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn x86_features() -> (bool, bool, bool, bool) {
    (false, false, false, false)
}

/// Bytes per second of the best of four 32 MiB copies (each byte read and written once).
fn measure_bandwidth() -> u64 {
    let src = vec![1u8; BANDWIDTH_BYTES];
    let mut dst = vec![0u8; BANDWIDTH_BYTES];
    let mut best = Duration::MAX;
    for _ in 0..4 {
        let start = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        best = best.min(start.elapsed());
    }
    (2.0 * BANDWIDTH_BYTES as f64 / best.as_secs_f64().max(1e-9)) as u64
}

/// Nanoseconds per weight of `precision`'s matmul on the probe matrix, at 1 and 16 rows.
fn time_kernel(precision: PrecisionLevel) -> Option<KernelTiming> {
    let mut sampler = Sampler::new(0x9e37_79b9);
    let w = sampler.weights(WeightDistribution::Gaussian, PROBE_ROWS * PROBE_K, 0.02);
    let w = Tensor::from_vec(w, (PROBE_ROWS, PROBE_K), &Device::Cpu).ok()?;
    let m = quantize_weight(&w, precision).ok()?;
    let weights = (PROBE_ROWS * PROBE_K) as f64;
    let mut per_weight = |rows: usize| -> Option<f64> {
        let x = Tensor::from_vec(
            sampler.weights(WeightDistribution::Gaussian, rows * PROBE_K, 1.0),
            (rows, PROBE_K),
            &Device::Cpu,
        )
        .ok()?;
        // The first call packs or converts lazily in some kernels: keep it out of the timing.
        m.forward(&x).ok()?;
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed() < PROBE_SPAN || calls < 2 {
            std::hint::black_box(m.forward(&x).ok()?);
            calls += 1;
        }
        Some(start.elapsed().as_nanos() as f64 / f64::from(calls) / weights)
    };
    Some(KernelTiming {
        ns_per_weight_m1: per_weight(1)?,
        ns_per_weight_m16: per_weight(PROBE_BATCH)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_interpolates_between_batch_sizes() {
        let t = KernelTiming {
            ns_per_weight_m1: 1.0,
            ns_per_weight_m16: 4.0,
        };
        assert!((t.ns_per_weight(1) - 1.0).abs() < 1e-12);
        assert!((t.ns_per_weight(16) - 4.0).abs() < 1e-12);
        assert!((t.ns_per_weight(31) - 7.0).abs() < 1e-12);
    }

    #[test]
    fn latency_falls_back_to_bandwidth() {
        let caps = HardwareCapabilities {
            avx2: false,
            avx512f: false,
            f16c: false,
            fma: false,
            neon: false,
            cores: 1,
            kernel_threads: 1,
            memory_bandwidth: 1_000_000_000,
            kernels: BTreeMap::new(),
        };
        // 1M f16 weights are 2 MB: 2 ms at 1 GB/s.
        let t = caps.predicted_latency(PrecisionLevel::FP16, 1_000_000, 1);
        assert!((t.as_secs_f64() - 0.002).abs() < 1e-9, "{t:?}");
        assert!(!caps.supports_precision(PrecisionLevel::INT4));
        assert!(caps.supports_precision(PrecisionLevel::FP32));
    }
}
