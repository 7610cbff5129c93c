//! Integration tests: pool properties, a two-thread stress test, an allocation count of the
//! reuse path, and the virtual memory manager on a temporary workspace.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc;

use proptest::prelude::*;
use rust_ai_ide_memory::MemoryError;
use rust_ai_ide_memory::pool::{MemoryPool, PoolHandle};
use rust_ai_ide_memory::vmm::{BackingStore, MemoryPermissions, VirtualMemoryManager};

// ---------------------------------------------------------------------------------------
// Allocation counting, per thread, so tests running in parallel do not disturb each other.

struct CountingAllocator;

thread_local! {
    static HEAP_CALLS: Cell<u64> = const { Cell::new(0) };
}

fn count_heap_call() {
    // `try_with`: a const, Drop-free thread-local is never torn down, but the allocator
    // must not panic even if it were.
    let _ = HEAP_CALLS.try_with(|calls| calls.set(calls.get() + 1));
}

fn heap_calls() -> u64 {
    HEAP_CALLS.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the arguments it was given, so the
// `GlobalAlloc` contract is `System`'s; counting touches only a thread-local `Cell`.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_heap_call();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_heap_call();
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_heap_call();
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_reuse_path_does_not_touch_the_heap() {
    // No periodic check inside the measured loops: a check may move idle values to the
    // shared depot, whose lists grow once; that is maintenance, not the reuse path.
    let pool = MemoryPool::<Vec<u8>>::builder()
        .trim_interval(usize::MAX)
        .build()
        .unwrap();
    for size in [64, 1024, 16 * 1024, 256 * 1024] {
        // Warm up: the first cycle builds the value (and the free list's slot).
        drop(pool.allocate(size).unwrap());
        let before = heap_calls();
        for _ in 0..1000 {
            let mut handle = pool.allocate(size).unwrap();
            handle.push(1);
            drop(handle);
        }
        assert_eq!(
            heap_calls(),
            before,
            "heap used on the reuse path at {size} B"
        );
    }
    let stats = pool.stats();
    assert_eq!(stats.fresh, 4);
    assert_eq!(stats.reuses, 4000);
}

// ---------------------------------------------------------------------------------------
// Pool properties.

#[derive(Debug, Clone)]
enum Op {
    Allocate(usize),
    AllocateExact(usize),
    Release(usize),
    Deallocate(usize),
    Detach(usize),
    Trim,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..5000).prop_map(Op::Allocate),
        2 => (0usize..5000).prop_map(Op::AllocateExact),
        4 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Deallocate),
        1 => any::<usize>().prop_map(Op::Detach),
        1 => Just(Op::Trim),
        1 => Just(Op::Clear),
    ]
}

fn classes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (4u32..8, 1u32..6).prop_map(|(min, n)| (min..min + n).map(|s| 1usize << s).collect()),
        proptest::collection::vec(1usize..4096, 1..6),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn pool_invariants_hold_for_any_sequence(
        classes in classes(),
        max_retained in 0usize..20_000,
        threshold in 0.0f64..=1.0,
        interval in 1usize..8,
        magazine in 0usize..5000,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let pool = MemoryPool::<Vec<u8>>::builder()
            .size_classes(classes.clone())
            .max_retained_bytes(max_retained)
            .fragmentation_threshold(threshold)
            .trim_interval(interval)
            .magazine_size(magazine)
            .build()
            .unwrap();
        let largest = *classes.iter().max().unwrap();
        let mut live: Vec<PoolHandle<'_, Vec<u8>>> = Vec::new();
        let (mut allocations, mut releases, mut detached) = (0u64, 0u64, 0u64);
        for op in ops {
            match op {
                Op::Allocate(size) => {
                    let handle = pool.allocate(size).unwrap();
                    prop_assert!(handle.capacity() >= size, "{} < {}", handle.capacity(), size);
                    prop_assert!(handle.is_empty());
                    allocations += 1;
                    live.push(handle);
                }
                Op::AllocateExact(size) => match pool.allocate_exact(size) {
                    Ok(handle) => {
                        prop_assert!(size <= largest);
                        prop_assert!(handle.capacity() >= size);
                        prop_assert!(handle.capacity() <= largest);
                        allocations += 1;
                        live.push(handle);
                    }
                    Err(MemoryError::SizeTooLarge { size: s, largest: l }) => {
                        prop_assert!(size > largest);
                        prop_assert_eq!((s, l), (size, largest));
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                },
                Op::Release(i) | Op::Deallocate(i) | Op::Detach(i) if live.is_empty() => {
                    let _ = i;
                }
                Op::Release(i) => {
                    let mut handle = live.swap_remove(i % live.len());
                    handle.extend_from_slice(b"dirty");
                    drop(handle);
                    releases += 1;
                }
                Op::Deallocate(i) => {
                    pool.deallocate(live.swap_remove(i % live.len())).unwrap();
                    releases += 1;
                }
                Op::Detach(i) => {
                    let value = live.swap_remove(i % live.len()).into_inner().unwrap();
                    drop(value);
                    detached += 1;
                }
                Op::Trim => {
                    pool.trim();
                }
                Op::Clear => {
                    pool.clear();
                    prop_assert_eq!(pool.stats().retained_bytes, 0);
                }
            }
            let s = pool.stats();
            prop_assert!(s.retained_bytes <= max_retained, "{} > {}", s.retained_bytes, max_retained);
            prop_assert_eq!(s.allocations, allocations);
            prop_assert_eq!(s.allocations, s.reuses + s.fresh + s.oversize);
            prop_assert_eq!(s.releases, releases);
            prop_assert_eq!(s.releases, s.returned + s.discarded);
            prop_assert_eq!(s.detached, detached);
            prop_assert_eq!(s.outstanding, live.len() as u64);
            // The count comes from event counters, the bytes from the magazines' and the
            // depot's own sums: they must agree.
            let smallest = *classes.iter().min().unwrap();
            prop_assert!(s.retained_count * smallest <= s.retained_bytes, "{s:?}");
            prop_assert!(s.retained_bytes <= s.retained_count * largest, "{s:?}");
            prop_assert!(s.idle_bytes <= s.retained_bytes);
            prop_assert!((0.0..=1.0).contains(&s.hit_rate));
            prop_assert!((0.0..=1.0).contains(&s.fragmentation));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Two threads, cross-thread release.

/// Fills a buffer with a pattern derived from `tag`, to check nobody else wrote to it.
fn stamp(handle: &mut Vec<u8>, tag: u64, len: usize) {
    handle.extend((0..len).map(|i| (tag as usize).wrapping_mul(31).wrapping_add(i) as u8));
}

fn stamp_intact(handle: &[u8], tag: u64) -> bool {
    handle
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (tag as usize).wrapping_mul(31).wrapping_add(i) as u8)
}

#[test]
fn two_threads_share_a_pool_with_cross_thread_release() {
    const ROUNDS: u64 = 20_000;
    let max_retained = 2 << 20;
    let pool = MemoryPool::<Vec<u8>>::builder()
        .max_retained_bytes(max_retained)
        .trim_interval(64)
        .build()
        .unwrap();
    let (to_consumer, from_producer) = mpsc::sync_channel::<(u64, PoolHandle<'_, Vec<u8>>)>(64);
    std::thread::scope(|scope| {
        let pool = &pool;
        scope.spawn(move || {
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            for tag in 0..ROUNDS {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let size = 1 + (seed % (64 * 1024)) as usize;
                let mut handle = pool.allocate(size).unwrap();
                assert!(handle.is_empty() && handle.capacity() >= size);
                stamp(&mut handle, tag, size.min(512));
                if tag % 2 == 0 {
                    to_consumer.send((tag, handle)).unwrap();
                } else {
                    assert!(stamp_intact(&handle, tag));
                }
            }
        });
        scope.spawn(move || {
            for (local, (tag, handle)) in (0u64..).zip(from_producer) {
                assert!(stamp_intact(&handle, tag), "buffer {tag} changed in flight");
                drop(handle); // released on this thread's shard
                let mut own = pool.allocate(4096).unwrap();
                assert!(own.is_empty());
                stamp(&mut own, u64::MAX - local, 100);
                assert!(stamp_intact(&own, u64::MAX - local));
            }
        });
    });
    let stats = pool.stats();
    assert_eq!(stats.allocations, ROUNDS + ROUNDS / 2);
    assert_eq!(stats.releases, stats.allocations);
    assert_eq!(stats.outstanding, 0);
    assert!(stats.retained_bytes <= max_retained);
    // The count comes from event counters, the bytes from the pool's own sums.
    assert!(stats.retained_bytes >= stats.retained_count * 64);
    assert!(stats.retained_bytes <= stats.retained_count * 64 * 1024);
    assert!(stats.reuses > 0, "memory was reused: {stats:?}");
    assert!(
        stats.refills > 0,
        "the producer reused what the consumer released: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The virtual memory manager on a temporary workspace.

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, data: &[u8]| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        };
        write(".gitignore", b"*.log\nbuild/\n");
        write("src/main.rs", b"fn main() {}\n");
        write("src/big.bin", &pseudo_random_bytes(256 * 1024 + 123));
        write("debug.log", b"ignored by .gitignore");
        write("build/out.o", b"ignored directory");
        write("empty.txt", b"");
        write(".env", b"HIDDEN=1\n");
        write(".git/HEAD", b"ref: refs/heads/main\n");
        std::os::unix::fs::symlink(root.join("src/main.rs"), root.join("link.rs")).unwrap();
        Self { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
}

fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn a_workspace_is_mapped_honouring_gitignore() {
    let ws = Workspace::new();
    let vmm = VirtualMemoryManager::new();
    let mapping = vmm.map_workspace_to_disk(ws.root()).unwrap();
    let root = ws.root();
    let mapped: Vec<_> = mapping
        .files
        .iter()
        .map(|f| f.path.strip_prefix(root).unwrap().to_path_buf())
        .collect();
    let expected: Vec<std::path::PathBuf> = [".env", ".gitignore", "src/big.bin", "src/main.rs"]
        .iter()
        .map(Into::into)
        .collect();
    assert_eq!(mapped, expected);
    assert_eq!(mapping.empty_files, vec![root.join("empty.txt")]);
    assert_eq!(mapping.skipped, vec![root.join("link.rs")]);
    assert!(mapping.unreadable.is_empty(), "{:?}", mapping.unreadable);
    let on_disk: usize = expected
        .iter()
        .map(|rel| std::fs::metadata(root.join(rel)).unwrap().len() as usize)
        .sum();
    assert_eq!(mapping.total_bytes, on_disk);
    assert_eq!(mapping.file_count(), 4);

    for file in &mapping.files {
        assert_eq!(file.region.permissions, MemoryPermissions::READ_ONLY);
        assert_eq!(
            file.region.backing_store,
            BackingStore::File {
                path: file.path.clone()
            }
        );
        let contents = vmm
            .with_region_bytes(&file.region.id, <[u8]>::to_vec)
            .unwrap();
        assert_eq!(contents, std::fs::read(&file.path).unwrap());
        assert!(matches!(
            vmm.write_at(&file.region.id, 0, b"x"),
            Err(MemoryError::PermissionDenied { .. })
        ));
    }
    let stats = vmm.stats();
    assert_eq!(stats.resident_file_bytes, on_disk);
    assert_eq!(stats.held_bytes, 0, "file mappings are not held memory");
}

#[test]
fn random_4k_reads_match_pread() {
    let ws = Workspace::new();
    let vmm = VirtualMemoryManager::new();
    let mapping = vmm.map_workspace_to_disk(ws.root()).unwrap();
    let big = mapping.file(&ws.root().join("src/big.bin")).unwrap();
    let file = std::fs::File::open(&big.path).unwrap();
    let mut offset = 7usize;
    let (mut mapped, mut read) = ([0u8; 4096], [0u8; 4096]);
    for _ in 0..200 {
        offset = (offset * 7919 + 4093) % (big.region.size + 5000);
        let n = vmm.read_at(&big.region.id, offset, &mut mapped).unwrap();
        let m = file.read_at(&mut read, offset as u64).unwrap();
        assert_eq!(n, m, "length at offset {offset}");
        assert_eq!(mapped[..n], read[..m], "bytes at offset {offset}");
    }
}

#[test]
fn evicted_file_regions_read_back_the_same_bytes() {
    let ws = Workspace::new();
    let vmm = VirtualMemoryManager::new();
    let mapping = vmm.map_workspace_to_disk(ws.root()).unwrap();
    let big = mapping.file(&ws.root().join("src/big.bin")).unwrap();
    let resident = vmm.stats().resident_file_bytes;
    vmm.evict_region(&big.region.id).unwrap();
    assert!(!vmm.is_resident(&big.region.id).unwrap());
    assert_eq!(vmm.stats().resident_file_bytes, resident - big.region.size);
    vmm.prefetch_region(&big.region).unwrap();
    assert!(vmm.is_resident(&big.region.id).unwrap());
    assert_eq!(vmm.stats().resident_file_bytes, resident);
    let bytes = vmm
        .with_region_bytes(&big.region.id, <[u8]>::to_vec)
        .unwrap();
    assert_eq!(bytes, std::fs::read(&big.path).unwrap());

    assert_eq!(vmm.unmap_workspace(&mapping).unwrap(), 4);
    let stats = vmm.stats();
    assert_eq!((stats.regions, stats.resident_file_bytes), (0, 0));
    assert!(matches!(
        vmm.evict_region(&big.region.id),
        Err(MemoryError::UnknownRegion { .. })
    ));
}

#[test]
fn a_missing_workspace_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/workspace");
    match VirtualMemoryManager::new().map_workspace_to_disk(&missing) {
        Err(MemoryError::PathNotFound { path }) => assert_eq!(path, missing),
        other => panic!("expected PathNotFound, got {other:?}"),
    }
}

#[test]
fn a_single_file_can_be_mapped_as_a_workspace() {
    let ws = Workspace::new();
    let path = ws.root().join("src/main.rs");
    let mapping = VirtualMemoryManager::new()
        .map_workspace_to_disk(&path)
        .unwrap();
    assert_eq!(mapping.file_count(), 1);
    assert_eq!(mapping.files[0].path, path);
}

#[test]
fn unreadable_files_are_reported_not_fatal() {
    let ws = Workspace::new();
    let locked = ws.root().join("locked.txt");
    std::fs::write(&locked, b"secret").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // The walk must still reach the rest of the workspace as the unprivileged user.
    std::fs::set_permissions(ws.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let vmm = VirtualMemoryManager::new();
    let mapping = as_unprivileged_user(|| vmm.map_workspace_to_disk(ws.root())).unwrap();
    assert!(mapping.file(&locked).is_none());
    assert_eq!(mapping.unreadable.len(), 1, "{:?}", mapping.unreadable);
    assert_eq!(mapping.unreadable[0].path, locked);
    assert!(mapping.unreadable[0].reason.contains("open failed"));
    assert!(mapping.file(&ws.root().join("src/main.rs")).is_some());
}

/// Runs `f` with this thread's filesystem user id set to `nobody`, so that file modes bind
/// even when the tests run as root (Linux keeps the filesystem uid per thread, and giving
/// it up drops the capabilities that bypass file modes). Not root: the call fails and
/// changes nothing, and the modes bind anyway.
fn as_unprivileged_user<R>(f: impl FnOnce() -> R) -> R {
    const NOBODY: libc::uid_t = 65534;
    // SAFETY: setfsuid only changes the calling thread's filesystem credentials.
    let previous = unsafe { libc::setfsuid(NOBODY) };
    let out = f();
    // SAFETY: as above; restores the id the thread had.
    unsafe { libc::setfsuid(previous as libc::uid_t) };
    out
}

#[test]
fn read_only_regions_read_and_write_regions_write() {
    let vmm = VirtualMemoryManager::new();
    let ro = vmm
        .allocate_region(4096, MemoryPermissions::READ_ONLY)
        .unwrap();
    let mut buf = [1u8; 16];
    assert_eq!(vmm.read_at(&ro.id, 0, &mut buf).unwrap(), 16);
    assert_eq!(buf, [0u8; 16]);
    assert!(matches!(
        vmm.with_region_bytes_mut(&ro.id, |b| b[0] = 1),
        Err(MemoryError::PermissionDenied {
            access: "write",
            ..
        })
    ));
    let rw = vmm
        .allocate_region(4096, MemoryPermissions::READ_WRITE)
        .unwrap();
    vmm.write_at(&rw.id, 100, b"written").unwrap();
    assert_eq!(
        vmm.with_region_bytes(&rw.id, |b| b[100..107].to_vec())
            .unwrap(),
        b"written"
    );
}
