//! `HardwareAccelerator`: picks a device, runs kernels on it, and measures what it can do.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cpu;
use crate::device::{
    CpuCapabilities, DeviceType, GPUVendor, HardwareCapabilities, detect_os_accelerators,
};
use crate::error::HardwareError;
use crate::gpu::{DeviceTensor, GpuBackend, PipelineStats};
use crate::kernel::{Kernel, UnaryOp};
use crate::memory::HardwareMemoryManager;
use crate::probe;
use crate::tensor::Tensor;

/// Batch sizes the throughput curve is measured at.
const BATCHES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/// The optimal batch is the smallest one within this share of the best measured throughput:
/// past the knee a bigger batch only adds latency.
const KNEE: f64 = 0.9;
/// Timed runs per calibration point (the best one counts: noise only ever adds time).
const RUNS: usize = 3;

/// Numeric precisions a model can run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrecisionLevel {
    /// 32-bit float.
    FP32,
    /// 16-bit float.
    FP16,
    /// 8-bit integer weights with float scales.
    INT8,
    /// 4-bit integer weights with float scales.
    INT4,
}

/// Which back end [`HardwareAccelerator::with_preference`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// The best wgpu adapter (software ones included), else the CPU.
    Auto,
    /// A wgpu adapter or an error.
    Gpu,
    /// The CPU back end.
    Cpu,
}

/// What the calibration measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Copy kernel: bytes read plus bytes written per second.
    pub memory_bandwidth: u64,
    /// Matrix product: floating-point operations per second.
    pub compute_throughput: f64,
    /// Bytes the copy kernel moved per run.
    pub copy_bytes: u64,
    /// Edge of the square matrix product.
    pub matmul_n: usize,
}

/// One point of a batch throughput curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPoint {
    /// Rows per run.
    pub batch: usize,
    /// Rows per second (best of the timed runs).
    pub samples_per_second: f64,
}

/// A compute device (a wgpu adapter, or the CPU) with the kernels of [`Kernel`].
#[derive(Debug)]
pub struct HardwareAccelerator {
    device_type: DeviceType,
    capabilities: HardwareCapabilities,
    memory_manager: HardwareMemoryManager,
    gpu: Option<GpuBackend>,
    calibration: OnceLock<Calibration>,
    batch_curves: Mutex<HashMap<usize, Vec<BatchPoint>>>,
}

impl HardwareAccelerator {
    /// The best wgpu adapter (discrete, integrated, virtual, other, software), or the CPU back
    /// end when there is none or it cannot be opened.
    pub async fn new() -> Self {
        match Self::with_preference(Preference::Auto).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("gpu back end unavailable, using the cpu: {e}");
                Self::cpu()
            }
        }
    }

    /// The back end `preference` asks for.
    pub async fn with_preference(preference: Preference) -> Result<Self, HardwareError> {
        if preference == Preference::Cpu {
            return Ok(Self::cpu());
        }
        let instance = probe::new_instance();
        let Some(adapter) = probe::best_adapter(&instance).await else {
            return if preference == Preference::Gpu {
                Err(HardwareError::NoAdapter)
            } else {
                Ok(Self::cpu())
            };
        };
        let (gpu, adapter_caps) = GpuBackend::open(&adapter).await?;
        Ok(Self {
            device_type: DeviceType::GPU {
                vendor: GPUVendor::from_id(adapter_caps.summary.vendor),
            },
            capabilities: HardwareCapabilities {
                adapter: Some(adapter_caps),
                cpu: CpuCapabilities::detect(),
                os_accelerators: detect_os_accelerators(std::path::Path::new("/")),
            },
            memory_manager: gpu.memory().clone(),
            gpu: Some(gpu),
            calibration: OnceLock::new(),
            batch_curves: Mutex::new(HashMap::new()),
        })
    }

    /// [`HardwareAccelerator::with_preference`], blocking the calling thread.
    pub fn with_preference_blocking(preference: Preference) -> Result<Self, HardwareError> {
        pollster::block_on(Self::with_preference(preference))
    }

    /// The CPU back end (rayon): the fallback, and the reference the GPU is tested against.
    pub fn cpu() -> Self {
        Self {
            device_type: DeviceType::CPU,
            capabilities: HardwareCapabilities {
                adapter: None,
                cpu: CpuCapabilities::detect(),
                os_accelerators: detect_os_accelerators(std::path::Path::new("/")),
            },
            memory_manager: HardwareMemoryManager::host(),
            gpu: None,
            calibration: OnceLock::new(),
            batch_curves: Mutex::new(HashMap::new()),
        }
    }

    /// Where kernels run.
    pub fn device_type(&self) -> &DeviceType {
        &self.device_type
    }

    /// Adapter, CPU and OS-reported accelerators.
    pub fn capabilities(&self) -> &HardwareCapabilities {
        &self.capabilities
    }

    /// The buffer pool and staging ring (all zero counters on the CPU back end).
    pub fn memory_manager(&self) -> &HardwareMemoryManager {
        &self.memory_manager
    }

    /// Pipelines compiled and cache hits (zero on the CPU back end).
    pub fn pipeline_stats(&self) -> PipelineStats {
        self.gpu
            .as_ref()
            .map(GpuBackend::pipeline_stats)
            .unwrap_or_default()
    }

    /// Fills every kernel output with NaN before the kernel runs (one extra pass), so elements
    /// a kernel fails to write come back as NaN instead of stale pool contents. For tests.
    pub fn set_output_poisoning(&self, on: bool) {
        if let Some(g) = &self.gpu {
            g.set_poison(on);
        }
    }

    /// Runs `kernel` on `inputs`: upload, kernel and readback in one submission. The future
    /// completes in one poll: it blocks the calling thread while the device works.
    pub async fn execute_kernel(
        &self,
        kernel: &Kernel,
        inputs: &[&Tensor],
    ) -> Result<Tensor, HardwareError> {
        self.execute_kernel_blocking(kernel, inputs)
    }

    /// [`HardwareAccelerator::execute_kernel`] without the future.
    pub fn execute_kernel_blocking(
        &self,
        kernel: &Kernel,
        inputs: &[&Tensor],
    ) -> Result<Tensor, HardwareError> {
        match &self.gpu {
            Some(g) => g.execute(kernel, inputs),
            None => cpu::execute(kernel, inputs),
        }
    }

    /// Copies `t` to the device (a pooled buffer) and waits for the copy.
    pub fn upload(&self, t: &Tensor) -> Result<DeviceTensor, HardwareError> {
        match &self.gpu {
            Some(g) => g.upload(t),
            None => Ok(DeviceTensor::host(t.clone())),
        }
    }

    /// Runs `kernel` on resident tensors and waits for it; the output stays on the device.
    pub fn run(
        &self,
        kernel: &Kernel,
        inputs: &[&DeviceTensor],
    ) -> Result<DeviceTensor, HardwareError> {
        match &self.gpu {
            Some(g) => g.run(kernel, inputs),
            None => {
                let host = inputs
                    .iter()
                    .map(|t| t.as_host().ok_or(HardwareError::ForeignTensor))
                    .collect::<Result<Vec<_>, _>>()?;
                cpu::execute(kernel, &host).map(DeviceTensor::host)
            }
        }
    }

    /// Copies a resident tensor back to host memory.
    pub fn download(&self, t: &DeviceTensor) -> Result<Tensor, HardwareError> {
        match &self.gpu {
            Some(g) => g.download(t),
            None => t.as_host().cloned().ok_or(HardwareError::ForeignTensor),
        }
    }

    /// Whether kernels can run at `precision` here: FP32 always; FP16 where the adapter has
    /// `shader-f16` (CPU: `f16c`/`fp16`); INT8 everywhere (the dequantize-matmul kernel needs
    /// only 32-bit integer ops); INT4 nowhere yet (no 4-bit kernel).
    pub fn supports_precision(&self, precision: PrecisionLevel) -> bool {
        match precision {
            PrecisionLevel::FP32 | PrecisionLevel::INT8 => true,
            PrecisionLevel::FP16 => match &self.capabilities.adapter {
                Some(a) => a.shader_f16,
                None => self.capabilities.cpu.has_f16(),
            },
            PrecisionLevel::INT4 => false,
        }
    }

    /// Bytes per second the copy kernel moves (read plus write), measured once and cached.
    pub fn memory_bandwidth(&self) -> u64 {
        self.calibration().memory_bandwidth
    }

    /// Floating-point operations per second of the matrix product, measured once and cached.
    pub fn compute_throughput(&self) -> f64 {
        self.calibration().compute_throughput
    }

    /// The calibration (runs it the first time: a copy and a matrix product, best of three
    /// runs each, on data already on the device).
    pub fn calibration(&self) -> Calibration {
        *self.calibration.get_or_init(|| self.calibrate())
    }

    /// The batch size for a model of `model_size` bytes of f32 weights: the smallest batch
    /// whose measured throughput is within 90% of the best on
    /// [`HardwareAccelerator::batch_throughput_curve`], capped so the activations fit a buffer.
    pub fn optimal_batch_size(&self, model_size: usize) -> usize {
        let curve = self.batch_throughput_curve(model_size);
        let best = curve
            .iter()
            .map(|p| p.samples_per_second)
            .fold(0.0, f64::max);
        curve
            .iter()
            .find(|p| p.samples_per_second >= KNEE * best)
            .map_or(1, |p| p.batch)
    }

    /// Rows per second of one layer of the model, `x [batch, d] · W [d, d]` with `d` the square
    /// root of the weight count rounded to a power of two in 64..=1024, at batches 1 to 256;
    /// measured on first use per `d` and cached.
    pub fn batch_throughput_curve(&self, model_size: usize) -> Vec<BatchPoint> {
        let d = layer_width(model_size);
        if let Some(c) = self.batch_curves.lock().get(&d) {
            return c.clone();
        }
        let max_rows = self.max_rows(d);
        let curve = self.measure_curve(d, max_rows).unwrap_or_else(|e| {
            tracing::warn!("batch curve measurement failed: {e}");
            vec![BatchPoint {
                batch: 1,
                samples_per_second: 0.0,
            }]
        });
        self.batch_curves.lock().insert(d, curve.clone());
        curve
    }

    fn max_rows(&self, d: usize) -> usize {
        match &self.capabilities.adapter {
            Some(a) => (a.max_storage_buffer_binding_size / (d as u64 * 4)).max(1) as usize,
            None => usize::MAX,
        }
    }

    fn measure_curve(&self, d: usize, max_rows: usize) -> Result<Vec<BatchPoint>, HardwareError> {
        let w = self.upload(&pattern(&[d, d]))?;
        let mut curve = Vec::new();
        for &batch in BATCHES.iter().filter(|&&b| b <= max_rows) {
            let x = self.upload(&pattern(&[batch, d]))?;
            let t = self.best_time(&Kernel::MatMul, &[&x, &w])?;
            curve.push(BatchPoint {
                batch,
                samples_per_second: batch as f64 / t.as_secs_f64(),
            });
        }
        Ok(curve)
    }

    fn calibrate(&self) -> Calibration {
        let hardware = self
            .capabilities
            .adapter
            .as_ref()
            .is_some_and(|a| !a.software);
        // Big enough that launch overhead is small next to the transfer on each kind of device.
        let (copy_floats, matmul_n) = if hardware {
            (16 << 20, 1024)
        } else {
            (4 << 20, 512)
        };
        let measured = (|| -> Result<Calibration, HardwareError> {
            let x = self.upload(&pattern(&[copy_floats]))?;
            let copy = self.best_time(&Kernel::Unary(UnaryOp::Identity), &[&x])?;
            drop(x);
            let a = self.upload(&pattern(&[matmul_n, matmul_n]))?;
            let b = self.upload(&pattern(&[matmul_n, matmul_n]))?;
            let mm = self.best_time(&Kernel::MatMul, &[&a, &b])?;
            let copy_bytes = copy_floats as u64 * 4 * 2;
            Ok(Calibration {
                memory_bandwidth: (copy_bytes as f64 / copy.as_secs_f64()) as u64,
                compute_throughput: 2.0 * (matmul_n as f64).powi(3) / mm.as_secs_f64(),
                copy_bytes,
                matmul_n,
            })
        })();
        measured.unwrap_or_else(|e| {
            tracing::warn!("calibration failed: {e}");
            Calibration {
                memory_bandwidth: 0,
                compute_throughput: 0.0,
                copy_bytes: 0,
                matmul_n: 0,
            }
        })
    }

    /// One warm-up run, then the best of [`RUNS`] timed runs (each waits for the device).
    fn best_time(
        &self,
        kernel: &Kernel,
        inputs: &[&DeviceTensor],
    ) -> Result<Duration, HardwareError> {
        drop(self.run(kernel, inputs)?);
        let mut best = Duration::MAX;
        for _ in 0..RUNS {
            let start = Instant::now();
            let out = self.run(kernel, inputs)?;
            best = best.min(start.elapsed());
            drop(out);
        }
        Ok(best.max(Duration::from_nanos(1)))
    }
}

/// The layer width standing for a model of `model_size` bytes of f32 weights.
fn layer_width(model_size: usize) -> usize {
    let params = (model_size / 4).max(1) as f64;
    (params.sqrt() as usize).next_power_of_two().clamp(64, 1024)
}

/// Deterministic non-trivial data for calibration runs (values in [-1, 1)).
fn pattern(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.5 - 1.0)
        .collect();
    Tensor::from_f32(shape, data).expect("shape and length agree")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_width_is_clamped_power_of_two() {
        assert_eq!(layer_width(0), 64);
        assert_eq!(layer_width(4 * 200 * 200), 256);
        assert_eq!(layer_width(7_000_000_000), 1024);
    }

    #[test]
    fn cpu_backend_measures_and_picks_from_the_curve() {
        let acc = HardwareAccelerator::cpu();
        let curve = acc.batch_throughput_curve(4 * 64 * 64);
        assert_eq!(curve.len(), BATCHES.len());
        assert!(curve.iter().all(|p| p.samples_per_second > 0.0));
        let best = curve
            .iter()
            .map(|p| p.samples_per_second)
            .fold(0.0, f64::max);
        let chosen = acc.optimal_batch_size(4 * 64 * 64);
        let point = curve
            .iter()
            .find(|p| p.batch == chosen)
            .expect("chosen batch is on the curve");
        assert!(point.samples_per_second >= KNEE * best);
        assert!(
            curve
                .iter()
                .take_while(|p| p.batch < chosen)
                .all(|p| p.samples_per_second < KNEE * best)
        );
        assert!(acc.memory_bandwidth() > 0);
        assert!(acc.compute_throughput() > 0.0);
        assert_eq!(
            acc.calibration(),
            acc.calibration(),
            "cached after the first run"
        );
    }
}
