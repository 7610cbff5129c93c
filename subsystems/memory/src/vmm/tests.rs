//! Unit tests of `VirtualMemoryManager` regions, permissions, accounting and eviction.

use super::*;

#[test]
fn zero_and_overflowing_sizes_are_errors() {
    let vmm = VirtualMemoryManager::new();
    assert!(matches!(
        vmm.allocate_region(0, MemoryPermissions::READ_WRITE),
        Err(MemoryError::InvalidSize { size: 0, .. })
    ));
    assert!(matches!(
        vmm.allocate_region(usize::MAX, MemoryPermissions::READ_WRITE),
        Err(MemoryError::InvalidSize { .. })
    ));
    assert_eq!(vmm.stats().held_bytes, 0);
}

#[test]
fn more_than_the_machine_has_is_exhausted() {
    let vmm = VirtualMemoryManager::new();
    let too_much = vmm.available_memory() + (1 << 30);
    assert!(matches!(
        vmm.allocate_region(too_much, MemoryPermissions::READ_WRITE),
        Err(MemoryError::Exhausted { .. })
    ));
    assert_eq!(vmm.stats().held_bytes, 0, "failed reservation given back");
}

#[test]
fn the_memory_limit_is_a_budget() {
    let vmm = VirtualMemoryManager::builder()
        .memory_limit(3 * 4096)
        .build()
        .unwrap();
    let page = vmm.page_size();
    let first = vmm
        .allocate_region(page, MemoryPermissions::READ_WRITE)
        .unwrap();
    if page == 4096 {
        vmm.allocate_region(2 * page, MemoryPermissions::READ_WRITE)
            .unwrap();
    }
    match vmm.allocate_region(1, MemoryPermissions::READ_WRITE) {
        Err(MemoryError::Exhausted { requested, .. }) => assert_eq!(requested, page),
        other => panic!("expected Exhausted, got {other:?}"),
    }
    vmm.free_region(&first.id).unwrap();
    vmm.allocate_region(1, MemoryPermissions::READ_WRITE)
        .unwrap();
}

#[test]
fn regions_are_rounded_to_pages_and_accounted() {
    let vmm = VirtualMemoryManager::new();
    let page = vmm.page_size();
    let region = vmm
        .allocate_region(page + 1, MemoryPermissions::READ_WRITE)
        .unwrap();
    assert_eq!(region.size, 2 * page);
    assert_eq!(region.start_address % page, 0);
    assert_eq!(region.backing_store, BackingStore::Anonymous);
    assert!(region.id.starts_with("anon-"));
    assert_eq!(vmm.stats().held_bytes, 2 * page);
    assert_eq!(vmm.region(&region.id).unwrap(), region);
    assert_eq!(vmm.regions(), vec![region.clone()]);
    vmm.free_region(&region.id).unwrap();
    assert_eq!(vmm.stats().held_bytes, 0);
    assert!(matches!(
        vmm.free_region(&region.id),
        Err(MemoryError::UnknownRegion { .. })
    ));
}

#[test]
fn write_permission_regions_can_be_written_and_read_back() {
    let vmm = VirtualMemoryManager::new();
    let region = vmm
        .allocate_region(8192, MemoryPermissions::READ_WRITE)
        .unwrap();
    vmm.write_at(&region.id, 4090, b"across a page").unwrap();
    let mut buf = [0u8; 13];
    assert_eq!(vmm.read_at(&region.id, 4090, &mut buf).unwrap(), 13);
    assert_eq!(&buf, b"across a page");
    vmm.with_region_bytes_mut(&region.id, |bytes| bytes[0] = 42)
        .unwrap();
    let first = vmm.with_region_bytes(&region.id, |bytes| bytes[0]).unwrap();
    assert_eq!(first, 42);
}

#[test]
fn read_only_and_executable_regions_read_zeroes_and_refuse_writes() {
    let vmm = VirtualMemoryManager::new();
    for permissions in [
        MemoryPermissions::READ_ONLY,
        MemoryPermissions::READ_EXECUTE,
    ] {
        let region = vmm.allocate_region(100, permissions).unwrap();
        assert_eq!(region.permissions, permissions);
        let zeroes = vmm
            .with_region_bytes(&region.id, |bytes| bytes.iter().all(|&b| b == 0))
            .unwrap();
        assert!(zeroes);
        assert!(matches!(
            vmm.write_at(&region.id, 0, b"x"),
            Err(MemoryError::PermissionDenied {
                access: "write",
                ..
            })
        ));
    }
}

#[test]
fn unsupported_permissions_are_refused() {
    let vmm = VirtualMemoryManager::new();
    for permissions in [
        MemoryPermissions::new(false, false, false),
        MemoryPermissions::new(false, true, false),
        MemoryPermissions::new(true, true, true),
    ] {
        assert!(matches!(
            vmm.allocate_region(4096, permissions),
            Err(MemoryError::UnsupportedPermissions { .. })
        ));
    }
    assert_eq!(MemoryPermissions::READ_EXECUTE.to_string(), "r-x");
}

#[test]
fn reads_behave_like_pread_and_writes_are_bounds_checked() {
    let vmm = VirtualMemoryManager::new();
    let region = vmm
        .allocate_region(4096, MemoryPermissions::READ_WRITE)
        .unwrap();
    let size = region.size;
    let mut buf = [1u8; 100];
    assert_eq!(vmm.read_at(&region.id, size - 10, &mut buf).unwrap(), 10);
    assert_eq!(vmm.read_at(&region.id, size, &mut buf).unwrap(), 0);
    assert_eq!(vmm.read_at(&region.id, usize::MAX, &mut buf).unwrap(), 0);
    assert!(matches!(
        vmm.write_at(&region.id, size - 1, b"ab"),
        Err(MemoryError::OutOfBounds { offset, len: 2, .. }) if offset == size - 1
    ));
    assert!(matches!(
        vmm.write_at(&region.id, usize::MAX, b"ab"),
        Err(MemoryError::OutOfBounds { .. })
    ));
    assert!(matches!(
        vmm.read_at("anon-999999", 0, &mut buf),
        Err(MemoryError::UnknownRegion { .. })
    ));
}

#[test]
fn evicting_anonymous_memory_frees_it() {
    let vmm = VirtualMemoryManager::new();
    let region = vmm
        .allocate_region(4096, MemoryPermissions::READ_WRITE)
        .unwrap();
    vmm.prefetch_region(&region).unwrap();
    vmm.evict_region(&region.id).unwrap();
    let stats = vmm.stats();
    assert_eq!((stats.held_bytes, stats.regions), (0, 0));
    assert_eq!((stats.evictions, stats.prefetches), (1, 1));
    assert!(matches!(
        vmm.evict_region(&region.id),
        Err(MemoryError::UnknownRegion { .. })
    ));
    assert!(matches!(
        vmm.prefetch_region(&region),
        Err(MemoryError::UnknownRegion { .. })
    ));
}

#[test]
fn stale_descriptors_are_not_prefetched() {
    let vmm = VirtualMemoryManager::new();
    let region = vmm
        .allocate_region(4096, MemoryPermissions::READ_ONLY)
        .unwrap();
    let mut stale = region.clone();
    stale.start_address += 4096;
    assert!(matches!(
        vmm.prefetch_region(&stale),
        Err(MemoryError::UnknownRegion { .. })
    ));
}

#[test]
fn swap_regions_keep_their_contents_across_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let swap = dir.path().join("swap");
    let vmm = VirtualMemoryManager::builder()
        .swap_dir(&swap)
        .build()
        .unwrap();
    let region = vmm
        .allocate_swap_region(3 * 4096, MemoryPermissions::READ_WRITE)
        .unwrap();
    let BackingStore::SwapFile { path } = region.backing_store.clone() else {
        panic!("expected a swap file, got {:?}", region.backing_store);
    };
    assert!(path.starts_with(&swap));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), region.size as u64);
    vmm.write_at(&region.id, 5000, b"survives").unwrap();
    assert_eq!(vmm.stats().held_bytes, region.size);

    vmm.evict_region(&region.id).unwrap();
    assert!(!vmm.is_resident(&region.id).unwrap());
    assert_eq!(vmm.stats().held_bytes, 0);
    // Flushed to the file before the pages went.
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[5000..5008], b"survives");

    let mut buf = [0u8; 8];
    vmm.read_at(&region.id, 5000, &mut buf).unwrap();
    assert_eq!(&buf, b"survives");
    assert!(vmm.is_resident(&region.id).unwrap());
    assert_eq!(vmm.stats().held_bytes, region.size);

    vmm.free_region(&region.id).unwrap();
    assert!(!path.exists(), "swap file removed with its region");
}

#[test]
fn swap_regions_need_a_swap_dir() {
    let vmm = VirtualMemoryManager::new();
    assert!(matches!(
        vmm.allocate_swap_region(4096, MemoryPermissions::READ_WRITE),
        Err(MemoryError::NoSwapDir)
    ));
}

#[test]
fn swap_files_go_with_the_manager() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = VirtualMemoryManager::builder()
        .swap_dir(dir.path())
        .build()
        .unwrap();
    vmm.allocate_swap_region(4096, MemoryPermissions::READ_ONLY)
        .unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    drop(vmm);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_swap_dir_that_is_a_file_is_an_io_error_naming_it() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = VirtualMemoryManager::builder()
        .swap_dir(file.path())
        .build()
        .unwrap_err();
    assert!(matches!(err, MemoryError::Io { .. }));
    assert!(err.to_string().contains(&file.path().display().to_string()));
}

#[test]
fn a_panicking_writer_poisons_only_its_region() {
    let vmm = VirtualMemoryManager::new();
    let bad = vmm
        .allocate_region(4096, MemoryPermissions::READ_WRITE)
        .unwrap();
    let good = vmm
        .allocate_region(4096, MemoryPermissions::READ_WRITE)
        .unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        vmm.with_region_bytes_mut(&bad.id, |_| panic!("writer failed"))
    }));
    assert!(panicked.is_err());
    let mut buf = [0u8; 4];
    assert!(matches!(
        vmm.read_at(&bad.id, 0, &mut buf),
        Err(MemoryError::Poisoned { .. })
    ));
    assert_eq!(vmm.read_at(&good.id, 0, &mut buf).unwrap(), 4);
}

#[test]
fn available_memory_is_the_os_figure_less_what_is_held() {
    let vmm = VirtualMemoryManager::new();
    assert!(vmm.available_memory() > 0);
    let region = vmm
        .allocate_region(64 << 20, MemoryPermissions::READ_WRITE)
        .unwrap();
    assert_eq!(vmm.stats().held_bytes, region.size);
    assert_eq!(vmm.available_from(1 << 40), (1 << 40) - region.size);
    assert_eq!(vmm.available_from(region.size - 1), 0);
    vmm.free_region(&region.id).unwrap();
    assert_eq!(vmm.available_from(1 << 40), 1 << 40);
}
