//! The wgpu back end: device and queue, the pipeline cache, and how each kernel is encoded.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use parking_lot::Mutex;

use crate::device::{AdapterCapabilities, HardwareCapabilities};
use crate::error::HardwareError;
use crate::kernel::{BinaryOp, Kernel, ReduceOp, UnaryOp};
use crate::memory::{HardwareMemoryManager, PoolInner, PooledBuffer, StagingSlot};
use crate::tensor::{DType, Tensor};

/// Invocations per workgroup of the 1-D kernels.
const WG: u32 = 256;
/// Output tile edge of the matrix kernels.
const TILE: u32 = 64;
/// A quiet NaN: poisoned outputs read back as NaN wherever a kernel did not write.
const POISON: u32 = 0x7fc0_0000;
/// Idle pooled bytes kept at most, as a share of the adapter's largest buffer.
const POOL_LIMIT_BUFFERS: u64 = 4;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// Counters of the pipeline cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Pipelines compiled.
    pub compiled: u64,
    /// Lookups that found a compiled pipeline.
    pub hits: u64,
}

/// A shader file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    Elementwise,
    Fill,
    Reduce,
    MatMul,
    DequantMatMul,
}

impl Family {
    fn source(self) -> &'static str {
        match self {
            Self::Elementwise => include_str!("shaders/elementwise.wgsl"),
            Self::Fill => include_str!("shaders/fill.wgsl"),
            Self::Reduce => include_str!("shaders/reduce.wgsl"),
            // The two products share their tiling: each kernel's bindings and `stage`, then
            // the common body.
            Self::MatMul => concat!(
                include_str!("shaders/matmul.wgsl"),
                include_str!("shaders/matmul_tiles.wgsl")
            ),
            Self::DequantMatMul => concat!(
                include_str!("shaders/dequant_matmul.wgsl"),
                include_str!("shaders/matmul_tiles.wgsl")
            ),
        }
    }

    fn has_op(self) -> bool {
        matches!(self, Self::Elementwise | Self::Reduce)
    }
}

#[derive(Debug, Default)]
struct PipelineCache {
    modules: Mutex<HashMap<Family, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(Family, u32), wgpu::ComputePipeline>>,
    compiled: AtomicU64,
    hits: AtomicU64,
}

/// The GPU side of an accelerator.
#[derive(Debug)]
pub(crate) struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    memory: HardwareMemoryManager,
    pipelines: PipelineCache,
    owner: u64,
    poison: AtomicBool,
}

/// A tensor resident on the accelerator's device (or, for the CPU back end, in host memory).
/// Made by [`HardwareAccelerator::upload`](crate::HardwareAccelerator::upload) and
/// [`HardwareAccelerator::run`](crate::HardwareAccelerator::run); its buffer goes back to the
/// pool when it is dropped.
#[derive(Debug)]
pub struct DeviceTensor {
    shape: Vec<usize>,
    dtype: DType,
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    Gpu { buffer: PooledBuffer, owner: u64 },
    Host(Tensor),
}

impl DeviceTensor {
    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub(crate) fn host(t: Tensor) -> Self {
        Self {
            shape: t.shape().to_vec(),
            dtype: t.dtype(),
            storage: Storage::Host(t),
        }
    }

    pub(crate) fn as_host(&self) -> Option<&Tensor> {
        match &self.storage {
            Storage::Host(t) => Some(t),
            Storage::Gpu { .. } => None,
        }
    }

    /// Bytes of the device copy (i8 padded to whole words).
    fn device_bytes(&self) -> u64 {
        let n: usize = self.shape.iter().product();
        (n * self.dtype.size()).next_multiple_of(4) as u64
    }
}

impl GpuBackend {
    /// Opens `adapter` with its own limits (so large buffers fit) and the default features.
    pub(crate) async fn open(
        adapter: &wgpu::Adapter,
    ) -> Result<(Self, AdapterCapabilities), HardwareError> {
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("rust-ai-ide-accel"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| HardwareError::RequestDevice(e.to_string()))?;
        let caps = HardwareCapabilities::from_adapter(adapter, &limits);
        let pool_limit = limits.max_buffer_size.saturating_mul(POOL_LIMIT_BUFFERS);
        Ok((
            Self {
                memory: HardwareMemoryManager::for_device(device.clone(), pool_limit),
                device,
                queue,
                limits,
                pipelines: PipelineCache::default(),
                owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
                poison: AtomicBool::new(false),
            },
            caps,
        ))
    }

    pub(crate) fn memory(&self) -> &HardwareMemoryManager {
        &self.memory
    }

    pub(crate) fn set_poison(&self, on: bool) {
        self.poison.store(on, Ordering::Relaxed);
    }

    pub(crate) fn pipeline_stats(&self) -> PipelineStats {
        PipelineStats {
            compiled: self.pipelines.compiled.load(Ordering::Relaxed),
            hits: self.pipelines.hits.load(Ordering::Relaxed),
        }
    }

    fn pool(&self) -> &Arc<PoolInner> {
        self.memory
            .pool()
            .expect("a GPU back end always has a pool")
    }

    /// Upload, kernel and readback in one submission.
    pub(crate) fn execute(
        &self,
        kernel: &Kernel,
        inputs: &[&Tensor],
    ) -> Result<Tensor, HardwareError> {
        let shape = kernel.check(inputs)?;
        let mut encoder = self.encoder();
        let mut slots = Vec::new();
        let mut resident = Vec::new();
        for t in inputs {
            let (dt, slot) = self.stage_upload(&mut encoder, t)?;
            slots.push(slot);
            resident.push(dt);
        }
        let refs: Vec<&DeviceTensor> = resident.iter().collect();
        let mut keep = Vec::new();
        let out = self.encode_kernel(&mut encoder, kernel, &refs, shape, &mut keep)?;
        let readback = self.encode_readback(&mut encoder, &out);
        let index = self.queue.submit([encoder.finish()]);
        for slot in slots {
            self.pool().return_upload(slot);
        }
        let result = self.finish_readback(readback, &out, index);
        drop(keep);
        result
    }

    /// Copies `t` into a pooled device buffer and waits for the copy.
    pub(crate) fn upload(&self, t: &Tensor) -> Result<DeviceTensor, HardwareError> {
        let mut encoder = self.encoder();
        let (dt, slot) = self.stage_upload(&mut encoder, t)?;
        let index = self.queue.submit([encoder.finish()]);
        self.pool().return_upload(slot);
        self.wait(index)?;
        Ok(dt)
    }

    /// Runs `kernel` on resident tensors and waits for it.
    pub(crate) fn run(
        &self,
        kernel: &Kernel,
        inputs: &[&DeviceTensor],
    ) -> Result<DeviceTensor, HardwareError> {
        let specs: Vec<(&[usize], DType)> = inputs.iter().map(|t| (t.shape(), t.dtype())).collect();
        let shape = kernel.output_shape(&specs)?;
        let mut encoder = self.encoder();
        let mut keep = Vec::new();
        let out = self.encode_kernel(&mut encoder, kernel, inputs, shape, &mut keep)?;
        let index = self.queue.submit([encoder.finish()]);
        self.wait(index)?;
        drop(keep);
        Ok(out)
    }

    /// Reads a resident `f32` tensor back into host memory.
    pub(crate) fn download(&self, t: &DeviceTensor) -> Result<Tensor, HardwareError> {
        self.buffer_of(t)?;
        if t.dtype != DType::F32 {
            let data = self.read_bytes(t)?;
            let v: Vec<i8> = data[..t.shape.iter().product()]
                .iter()
                .map(|&b| b as i8)
                .collect();
            return Tensor::from_i8(&t.shape, v);
        }
        let mut encoder = self.encoder();
        let readback = self.encode_readback(&mut encoder, t);
        let index = self.queue.submit([encoder.finish()]);
        self.finish_readback(readback, t, index)
    }

    fn read_bytes(&self, t: &DeviceTensor) -> Result<Vec<u8>, HardwareError> {
        let mut encoder = self.encoder();
        let readback = self.encode_readback(&mut encoder, t);
        let index = self.queue.submit([encoder.finish()]);
        let bytes = self.map_read(&readback, t.device_bytes(), index);
        self.pool().return_readback(readback);
        bytes
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("accel"),
            })
    }

    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<(), HardwareError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map(|_| ())
            .map_err(|e| HardwareError::Device(e.to_string()))
    }

    fn check_size(&self, bytes: u64) -> Result<(), HardwareError> {
        if bytes > self.limits.max_storage_buffer_binding_size {
            return Err(HardwareError::TooLarge {
                bytes,
                limit: self.limits.max_storage_buffer_binding_size,
                what: "max_storage_buffer_binding_size",
            });
        }
        let class = crate::memory::size_class(bytes);
        if class > self.limits.max_buffer_size {
            return Err(HardwareError::TooLarge {
                bytes: class,
                limit: self.limits.max_buffer_size,
                what: "max_buffer_size",
            });
        }
        Ok(())
    }

    fn stage_upload(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        t: &Tensor,
    ) -> Result<(DeviceTensor, StagingSlot), HardwareError> {
        let bytes = t.device_bytes();
        let len = bytes.len() as u64;
        self.check_size(len)?;
        let slot = self.pool().upload_slot(len);
        {
            let mut view = slot
                .buffer()
                .slice(..len)
                .get_mapped_range_mut()
                .map_err(|e| HardwareError::Device(e.to_string()))?;
            view.copy_from_slice(&bytes);
        }
        slot.buffer().unmap();
        let storage = self.pool().acquire(len);
        encoder.copy_buffer_to_buffer(slot.buffer(), 0, storage.buffer(), 0, len);
        Ok((
            DeviceTensor {
                shape: t.shape().to_vec(),
                dtype: t.dtype(),
                storage: Storage::Gpu {
                    buffer: storage,
                    owner: self.owner,
                },
            },
            slot,
        ))
    }

    fn encode_readback(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        t: &DeviceTensor,
    ) -> wgpu::Buffer {
        let len = t.device_bytes();
        let readback = self.pool().readback_buffer(len);
        if let Storage::Gpu { buffer, .. } = &t.storage {
            encoder.copy_buffer_to_buffer(buffer.buffer(), 0, &readback, 0, len);
        }
        readback
    }

    fn finish_readback(
        &self,
        readback: wgpu::Buffer,
        t: &DeviceTensor,
        index: wgpu::SubmissionIndex,
    ) -> Result<Tensor, HardwareError> {
        let bytes = self.map_read(&readback, t.device_bytes(), index);
        self.pool().return_readback(readback);
        let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes?);
        Tensor::from_f32(&t.shape, floats)
    }

    fn map_read(
        &self,
        readback: &wgpu::Buffer,
        len: u64,
        index: wgpu::SubmissionIndex,
    ) -> Result<Vec<u8>, HardwareError> {
        let (tx, rx) = mpsc::channel();
        readback.map_async(wgpu::MapMode::Read, ..len, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        rx.recv()
            .map_err(|e| HardwareError::Device(e.to_string()))?
            .map_err(|e| HardwareError::Device(e.to_string()))?;
        let bytes = readback
            .get_mapped_range(..len)
            .map_err(|e| HardwareError::Device(e.to_string()))?
            .to_vec();
        readback.unmap();
        Ok(bytes)
    }

    fn buffer_of<'a>(&self, t: &'a DeviceTensor) -> Result<&'a wgpu::Buffer, HardwareError> {
        match &t.storage {
            Storage::Gpu { buffer, owner } if *owner == self.owner => Ok(buffer.buffer()),
            _ => Err(HardwareError::ForeignTensor),
        }
    }

    fn pipeline(&self, family: Family, op: u32) -> wgpu::ComputePipeline {
        if let Some(p) = self.pipelines.pipelines.lock().get(&(family, op)) {
            self.pipelines.hits.fetch_add(1, Ordering::Relaxed);
            return p.clone();
        }
        let module = self
            .pipelines
            .modules
            .lock()
            .entry(family)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some("accel kernel"),
                        source: wgpu::ShaderSource::Wgsl(family.source().into()),
                    })
            })
            .clone();
        let constants = [("OP", f64::from(op))];
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("accel kernel"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: if family.has_op() { &constants } else { &[] },
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        self.pipelines.compiled.fetch_add(1, Ordering::Relaxed);
        // Two threads may compile the same pipeline at once; the first one stored wins.
        self.pipelines
            .pipelines
            .lock()
            .entry((family, op))
            .or_insert(pipeline)
            .clone()
    }

    /// A 1-D grid of `groups` workgroups folded into 2-D when it exceeds the per-dimension
    /// limit: `(x, y)`.
    fn grid(&self, groups: u32) -> (u32, u32) {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        if groups <= max {
            (groups.max(1), 1)
        } else {
            (max, groups.div_ceil(max))
        }
    }

    /// Encodes `kernel` on `inputs` into a fresh pooled output of `shape` (poisoned first
    /// when poisoning is on).
    fn encode_kernel(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        inputs: &[&DeviceTensor],
        shape: Vec<usize>,
        keep: &mut Vec<PooledBuffer>,
    ) -> Result<DeviceTensor, HardwareError> {
        let bufs = inputs
            .iter()
            .map(|t| self.buffer_of(t))
            .collect::<Result<Vec<_>, _>>()?;
        let out_len: usize = shape.iter().product();
        let out_bytes = out_len as u64 * 4;
        self.check_size(out_bytes)?;
        let len32 = |n: usize| {
            u32::try_from(n).map_err(|_| HardwareError::TooLarge {
                bytes: n as u64,
                limit: u64::from(u32::MAX),
                what: "elements addressable by a kernel",
            })
        };
        let out = self.pool().acquire(out_bytes);
        if self.poison.load(Ordering::Relaxed) {
            let groups = len32(out_len)?.div_ceil(WG);
            let (x, y) = self.grid(groups);
            let params = [len32(out_len)?, x * WG, POISON, 0];
            keep.push(self.dispatch(
                encoder,
                Family::Fill,
                0,
                &params,
                &[],
                (out.buffer(), out_bytes),
                (x, y),
            )?);
        }
        let sized: Vec<(&wgpu::Buffer, u64)> = bufs
            .iter()
            .zip(inputs)
            .map(|(b, t)| (*b, t.device_bytes()))
            .collect();
        let target = (out.buffer(), out_bytes);
        match *kernel {
            Kernel::Unary(_) | Kernel::Binary(_) | Kernel::Axpy { .. } => {
                let (op, alpha) = elementwise_op(kernel);
                let n = len32(out_len)?;
                let (x, y) = self.grid(n.div_ceil(WG));
                let params = [n, x * WG, alpha.to_bits(), 0];
                let ins = if sized.len() == 1 {
                    vec![sized[0], sized[0]]
                } else {
                    sized
                };
                keep.push(self.dispatch(
                    encoder,
                    Family::Elementwise,
                    op,
                    &params,
                    &ins,
                    target,
                    (x, y),
                )?);
            }
            Kernel::Reduce(_) | Kernel::Softmax => {
                let op = match kernel {
                    Kernel::Reduce(ReduceOp::Sum) => 0,
                    Kernel::Reduce(ReduceOp::Mean) => 1,
                    Kernel::Reduce(ReduceOp::Max) => 2,
                    Kernel::Reduce(ReduceOp::Min) => 3,
                    _ => 8,
                };
                let cols = *inputs[0].shape().last().unwrap_or(&1);
                let rows = len32(inputs[0].shape().iter().product::<usize>() / cols)?;
                let (x, y) = self.grid(rows);
                let params = [rows, len32(cols)?, x, 0];
                keep.push(self.dispatch(
                    encoder,
                    Family::Reduce,
                    op,
                    &params,
                    &sized,
                    target,
                    (x, y),
                )?);
            }
            Kernel::MatMul | Kernel::DequantMatMul { .. } => {
                // The two share the tiled body; the INT8 one reads its block size from
                // the last params word.
                let (family, block_size) = match *kernel {
                    Kernel::DequantMatMul { block_size } => (Family::DequantMatMul, block_size),
                    _ => (Family::MatMul, 0),
                };
                let (m, k, n) = (shape[0], inputs[0].shape()[1], shape[1]);
                let params = [len32(m)?, len32(n)?, len32(k)?, block_size];
                let grid = (len32(n)?.div_ceil(TILE), len32(m)?.div_ceil(TILE));
                keep.push(self.dispatch(encoder, family, 0, &params, &sized, target, grid)?);
            }
        }
        Ok(DeviceTensor {
            shape,
            dtype: DType::F32,
            storage: Storage::Gpu {
                buffer: out,
                owner: self.owner,
            },
        })
    }

    /// One compute pass: binding 0 the 16-byte params (returned: keep it until the submission
    /// is done), then `inputs`, then `output`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per kernel family, all positional data"
    )]
    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        family: Family,
        op: u32,
        params: &[u32; 4],
        inputs: &[(&wgpu::Buffer, u64)],
        output: (&wgpu::Buffer, u64),
        (x, y): (u32, u32),
    ) -> Result<PooledBuffer, HardwareError> {
        if y > self.limits.max_compute_workgroups_per_dimension {
            return Err(HardwareError::TooLarge {
                bytes: output.1,
                limit: u64::from(self.limits.max_compute_workgroups_per_dimension),
                what: "workgroups per dimension",
            });
        }
        let pipeline = self.pipeline(family, op);
        let uniform = self.pool().acquire(16);
        self.queue
            .write_buffer(uniform.buffer(), 0, bytemuck::cast_slice(params));
        let mut entries = vec![binding(0, uniform.buffer(), 16)];
        for (i, (buf, len)) in inputs.iter().chain([&output]).enumerate() {
            entries.push(binding(i as u32 + 1, buf, *len));
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("accel kernel"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("accel kernel"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        drop(pass);
        // The caller holds the uniform until its submission is done: a second dispatch in
        // the same submission must not get (and overwrite) the same pooled buffer.
        Ok(uniform)
    }
}

fn binding(index: u32, buffer: &wgpu::Buffer, len: u64) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding: index,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset: 0,
            size: NonZeroU64::new(len.next_multiple_of(4)),
        }),
    }
}

/// The shader's OP code and `alpha` of an elementwise kernel.
fn elementwise_op(kernel: &Kernel) -> (u32, f32) {
    match *kernel {
        Kernel::Unary(op) => (
            match op {
                UnaryOp::Identity => 0,
                UnaryOp::Neg => 1,
                UnaryOp::Relu => 2,
                UnaryOp::Gelu => 3,
                UnaryOp::Silu => 4,
                UnaryOp::Exp => 5,
            },
            0.0,
        ),
        Kernel::Binary(op) => (
            match op {
                BinaryOp::Add => 16,
                BinaryOp::Sub => 17,
                BinaryOp::Mul => 18,
                BinaryOp::Div => 19,
                BinaryOp::Max => 20,
            },
            0.0,
        ),
        Kernel::Axpy { alpha } => (32, alpha),
        _ => (0, 0.0),
    }
}
