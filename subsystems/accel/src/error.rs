//! The crate's error type.

/// What can go wrong while probing hardware or running a kernel.
#[derive(Debug, thiserror::Error)]
pub enum HardwareError {
    /// The kernel got the wrong number of inputs.
    #[error("{kernel} takes {expected} inputs, got {got}")]
    InputCount {
        /// The kernel's name.
        kernel: &'static str,
        /// How many it takes.
        expected: usize,
        /// How many it got.
        got: usize,
    },
    /// Input shapes do not fit the kernel.
    #[error("shape mismatch in {kernel}: {detail}")]
    ShapeMismatch {
        /// The kernel's name.
        kernel: &'static str,
        /// What does not fit.
        detail: String,
    },
    /// An input has the wrong element type.
    #[error("{kernel} input {index} must be {expected:?}, got {got:?}")]
    DTypeMismatch {
        /// The kernel's name.
        kernel: &'static str,
        /// Which input.
        index: usize,
        /// The type the kernel takes there.
        expected: crate::DType,
        /// The type it got.
        got: crate::DType,
    },
    /// A tensor's data does not match its shape, or the shape is empty.
    #[error("invalid tensor: {0}")]
    InvalidTensor(String),
    /// A kernel parameter is out of range.
    #[error("invalid kernel parameter: {0}")]
    InvalidParameter(String),
    /// A buffer would exceed what the adapter can bind or allocate.
    #[error("{bytes} bytes exceed the adapter limit {limit} ({what})")]
    TooLarge {
        /// Bytes asked for.
        bytes: u64,
        /// The adapter's limit.
        limit: u64,
        /// Which limit.
        what: &'static str,
    },
    /// A device tensor came from another accelerator.
    #[error("device tensor belongs to another accelerator")]
    ForeignTensor,
    /// No wgpu adapter was found where one is required.
    #[error("no gpu adapter found")]
    NoAdapter,
    /// Requesting a device from the adapter failed.
    #[error("cannot open the adapter: {0}")]
    RequestDevice(String),
    /// Waiting for the device or mapping a buffer failed.
    #[error("device error: {0}")]
    Device(String),
}
