//! Adapter discovery: the ranking that picks the best wgpu adapter, and the summary the
//! harness puts into a GPU runner's fingerprint.

/// The adapter facts of a runner fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `NVIDIA H100 80GB HBM3` or `llvmpipe (LLVM 19.1.7, 256 bits)`.
    pub name: String,
    /// PCI (or Khronos) vendor id.
    pub vendor: u32,
    /// wgpu's `DeviceType` variant name: `Other`, `IntegratedGpu`, `DiscreteGpu`, `VirtualGpu`
    /// or `Cpu` (a software adapter).
    pub device_type: String,
    /// Driver name and driver info, e.g. `llvmpipe Mesa 25.0.7`.
    pub driver: String,
    /// The wgpu backend, e.g. `vulkan`.
    pub backend: String,
}

impl AdapterSummary {
    pub(crate) fn from_info(info: &wgpu::AdapterInfo) -> Self {
        let driver = [info.driver.trim(), info.driver_info.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            name: info.name.clone(),
            vendor: info.vendor,
            device_type: format!("{:?}", info.device_type),
            driver,
            backend: info.backend.to_str().to_owned(),
        }
    }
}

/// The adapter the accelerator would pick (blocking), or `None` when wgpu finds none.
pub fn detect_adapter() -> Option<AdapterSummary> {
    let instance = new_instance();
    let adapter = pollster::block_on(best_adapter(&instance))?;
    Some(AdapterSummary::from_info(&adapter.get_info()))
}

/// An instance over the backends this crate enables (Vulkan), honouring `WGPU_BACKEND`.
pub(crate) fn new_instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// The best compute adapter: discrete, then integrated, virtual, other, and software last;
/// ties go to the first one enumerated.
pub(crate) async fn best_adapter(instance: &wgpu::Instance) -> Option<wgpu::Adapter> {
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    adapters
        .into_iter()
        .enumerate()
        .min_by_key(|(i, a)| (rank(a.get_info().device_type), *i))
        .map(|(_, a)| a)
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_ranks_before_software() {
        assert!(rank(wgpu::DeviceType::DiscreteGpu) < rank(wgpu::DeviceType::IntegratedGpu));
        assert!(rank(wgpu::DeviceType::Other) < rank(wgpu::DeviceType::Cpu));
    }

    #[test]
    fn summary_joins_driver_fields() {
        let info = wgpu::AdapterInfo {
            name: "llvmpipe".into(),
            vendor: 0x10005,
            device: 0,
            device_type: wgpu::DeviceType::Cpu,
            device_pci_bus_id: String::new(),
            driver: "llvmpipe".into(),
            driver_info: "Mesa 25.0.7".into(),
            backend: wgpu::Backend::Vulkan,
            subgroup_min_size: 4,
            subgroup_max_size: 8,
            transient_saves_memory: None,
            limit_bucket: None,
        };
        let s = AdapterSummary::from_info(&info);
        assert_eq!(s.device_type, "Cpu");
        assert_eq!(s.driver, "llvmpipe Mesa 25.0.7");
        assert_eq!(s.backend, "vulkan");
    }
}
