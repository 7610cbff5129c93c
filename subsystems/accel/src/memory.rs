//! GPU memory: storage buffers pooled by power-of-two size class, and a staging ring of
//! mappable buffers for uploads and readbacks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Smallest size class, in bytes.
const MIN_CLASS: u64 = 256;
/// Staging buffers kept per direction; beyond that the smallest idle one is dropped.
const STAGING_SLOTS: usize = 8;

/// Counters of a [`HardwareMemoryManager`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Storage buffers created.
    pub buffers_created: u64,
    /// Storage buffer requests served from the pool.
    pub buffers_reused: u64,
    /// Bytes held by idle pooled buffers.
    pub pooled_bytes: u64,
    /// Staging buffers created (uploads and readbacks).
    pub staging_created: u64,
    /// Staging requests served by an existing ring slot.
    pub staging_reused: u64,
}

/// Pooled device buffers and the staging ring of one device.
///
/// A storage buffer request is rounded up to a power of two (at least 256 bytes) and served
/// from that class's free list when it has one; dropping the [`PooledBuffer`] returns it,
/// unless the pool already holds `pool_limit` bytes. Uploads go through mappable staging
/// buffers that are re-mapped for writing as soon as their copy has been submitted;
/// readbacks through mappable read buffers. Both are kept in small rings and reused.
#[derive(Debug, Clone)]
pub struct HardwareMemoryManager {
    inner: Option<Arc<PoolInner>>,
}

#[derive(Debug)]
pub(crate) struct PoolInner {
    device: wgpu::Device,
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    pool_limit: u64,
    uploads: Mutex<Vec<StagingSlot>>,
    readbacks: Mutex<Vec<wgpu::Buffer>>,
    created: AtomicU64,
    reused: AtomicU64,
    pooled_bytes: AtomicU64,
    staging_created: AtomicU64,
    staging_reused: AtomicU64,
}

/// A storage buffer on loan from the pool; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    pool: Arc<PoolInner>,
}

/// An upload staging buffer and whether its write mapping is ready.
#[derive(Debug)]
pub(crate) struct StagingSlot {
    buffer: wgpu::Buffer,
    mapped: Arc<AtomicBool>,
}

impl HardwareMemoryManager {
    /// A manager with no device (the CPU back end): every counter stays zero.
    pub(crate) fn host() -> Self {
        Self { inner: None }
    }

    pub(crate) fn for_device(device: wgpu::Device, pool_limit: u64) -> Self {
        Self {
            inner: Some(Arc::new(PoolInner {
                device,
                free: Mutex::new(HashMap::new()),
                pool_limit,
                uploads: Mutex::new(Vec::new()),
                readbacks: Mutex::new(Vec::new()),
                created: AtomicU64::new(0),
                reused: AtomicU64::new(0),
                pooled_bytes: AtomicU64::new(0),
                staging_created: AtomicU64::new(0),
                staging_reused: AtomicU64::new(0),
            })),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> MemoryStats {
        let Some(p) = &self.inner else {
            return MemoryStats::default();
        };
        MemoryStats {
            buffers_created: p.created.load(Ordering::Relaxed),
            buffers_reused: p.reused.load(Ordering::Relaxed),
            pooled_bytes: p.pooled_bytes.load(Ordering::Relaxed),
            staging_created: p.staging_created.load(Ordering::Relaxed),
            staging_reused: p.staging_reused.load(Ordering::Relaxed),
        }
    }

    /// Drops every idle pooled and staging buffer.
    pub fn trim(&self) {
        if let Some(p) = &self.inner {
            p.free.lock().clear();
            p.pooled_bytes.store(0, Ordering::Relaxed);
            p.uploads.lock().clear();
            p.readbacks.lock().clear();
        }
    }

    pub(crate) fn pool(&self) -> Option<&Arc<PoolInner>> {
        self.inner.as_ref()
    }
}

/// The size class of a request: the next power of two, at least [`MIN_CLASS`].
pub(crate) fn size_class(bytes: u64) -> u64 {
    bytes.max(MIN_CLASS).next_power_of_two()
}

impl PoolInner {
    /// A storage buffer of at least `bytes` (also a uniform, copy source and destination).
    pub(crate) fn acquire(self: &Arc<Self>, bytes: u64) -> PooledBuffer {
        let class = size_class(bytes);
        let reused = self.free.lock().get_mut(&class).and_then(Vec::pop);
        let buffer = match reused {
            Some(b) => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                self.pooled_bytes.fetch_sub(class, Ordering::Relaxed);
                b
            }
            None => {
                self.created.fetch_add(1, Ordering::Relaxed);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("accel storage"),
                    size: class,
                    // UNIFORM too: kernel parameters come from the same pool (256-byte class).
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::UNIFORM
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        PooledBuffer {
            buffer: Some(buffer),
            class,
            pool: Arc::clone(self),
        }
    }

    /// An upload staging buffer of at least `bytes`, mapped for writing: the smallest ready
    /// ring slot that fits, else (after waiting for pending re-maps) a new one.
    pub(crate) fn upload_slot(&self, bytes: u64) -> StagingSlot {
        let size = size_class(bytes);
        for attempt in 0..2 {
            {
                let mut ring = self.uploads.lock();
                let best = ring
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.buffer.size() >= size && s.mapped.load(Ordering::Acquire))
                    .min_by_key(|(_, s)| s.buffer.size())
                    .map(|(i, _)| i);
                if let Some(i) = best {
                    self.staging_reused.fetch_add(1, Ordering::Relaxed);
                    return ring.swap_remove(i);
                }
                let pending = ring.iter().any(|s| s.buffer.size() >= size);
                if !pending || attempt == 1 {
                    break;
                }
            }
            // A slot that fits is still being re-mapped: let the device finish it.
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        }
        self.staging_created.fetch_add(1, Ordering::Relaxed);
        StagingSlot {
            buffer: self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("accel upload staging"),
                size,
                usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: true,
            }),
            mapped: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Gives an upload slot back after the copy out of it was submitted: it is re-mapped for
    /// writing in the background (the map completes once that submission is done).
    pub(crate) fn return_upload(&self, slot: StagingSlot) {
        slot.mapped.store(false, Ordering::Release);
        let flag = Arc::clone(&slot.mapped);
        slot.buffer.map_async(wgpu::MapMode::Write, .., move |res| {
            flag.store(res.is_ok(), Ordering::Release);
        });
        let mut ring = self.uploads.lock();
        ring.push(slot);
        if ring.len() > STAGING_SLOTS
            && let Some(i) = (0..ring.len()).min_by_key(|&i| ring[i].buffer.size())
        {
            ring.swap_remove(i);
        }
    }

    /// A readback buffer of at least `bytes` (unmapped).
    pub(crate) fn readback_buffer(&self, bytes: u64) -> wgpu::Buffer {
        let size = size_class(bytes);
        let mut ring = self.readbacks.lock();
        let best = (0..ring.len())
            .filter(|&i| ring[i].size() >= size)
            .min_by_key(|&i| ring[i].size());
        if let Some(i) = best {
            self.staging_reused.fetch_add(1, Ordering::Relaxed);
            return ring.swap_remove(i);
        }
        drop(ring);
        self.staging_created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("accel readback staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Gives a readback buffer back (unmapped).
    pub(crate) fn return_readback(&self, buffer: wgpu::Buffer) {
        let mut ring = self.readbacks.lock();
        ring.push(buffer);
        if ring.len() > STAGING_SLOTS
            && let Some(i) = (0..ring.len()).min_by_key(|&i| ring[i].size())
        {
            ring.swap_remove(i);
        }
    }
}

impl PooledBuffer {
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let Some(buffer) = self.buffer.take() else {
            return;
        };
        let pool = &self.pool;
        if pool.pooled_bytes.load(Ordering::Relaxed) + self.class <= pool.pool_limit {
            pool.pooled_bytes.fetch_add(self.class, Ordering::Relaxed);
            pool.free.lock().entry(self.class).or_default().push(buffer);
        }
    }
}

impl StagingSlot {
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_powers_of_two() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 512);
        assert_eq!(size_class(3 << 20), 4 << 20);
    }
}
