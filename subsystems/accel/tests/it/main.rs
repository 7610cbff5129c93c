//! Integration tests of rust-ai-ide-accel: kernels on a real adapter against the CPU
//! reference, pooling, pipeline caching, errors, and device discovery.

mod devices;
mod kernels;
mod resources;

use rust_ai_ide_accel::{HardwareAccelerator, Preference};

/// The GPU back end on the best adapter; `None` (after saying so) when there is no adapter,
/// unless `PERFLAB_REQUIRE_GPU_ADAPTER=1`, which makes a missing adapter a failure.
pub fn gpu(test: &str) -> Option<HardwareAccelerator> {
    match pollster::block_on(HardwareAccelerator::with_preference(Preference::Gpu)) {
        Ok(acc) => Some(acc),
        Err(e) => {
            if std::env::var("PERFLAB_REQUIRE_GPU_ADAPTER").is_ok_and(|v| v == "1") {
                panic!("{test}: PERFLAB_REQUIRE_GPU_ADAPTER=1 but no usable adapter: {e}");
            }
            eprintln!(
                "skipped {test}: no gpu adapter ({e}); install mesa-vulkan-drivers for lavapipe"
            );
            None
        }
    }
}
