//! Hardware accelerator for the Rust AI IDE: kernels on a wgpu adapter with a CPU fallback.
#![doc = include_str!("../README.md")]

mod accelerator;
mod cpu;
mod device;
mod error;
mod gpu;
mod kernel;
mod memory;
mod probe;
mod tensor;

pub use accelerator::{BatchPoint, Calibration, HardwareAccelerator, PrecisionLevel, Preference};
pub use device::{
    AdapterCapabilities, CpuCapabilities, DeviceType, GPUVendor, HardwareCapabilities,
    detect_os_accelerators,
};
pub use error::HardwareError;
pub use gpu::{DeviceTensor, PipelineStats};
pub use kernel::{BinaryOp, Kernel, ReduceOp, UnaryOp};
pub use memory::{HardwareMemoryManager, MemoryStats};
pub use probe::{AdapterSummary, detect_adapter};
pub use tensor::{DType, Tensor};
