//! What the OS says about memory: the page size and the memory available to new work.

/// The page size, from `sysconf(_SC_PAGESIZE)` (4096 if the OS does not say).
pub(crate) fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf takes an integer and returns an integer; it has no
        // memory-safety preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if let Ok(size) = usize::try_from(size)
            && size.is_power_of_two()
        {
            return size;
        }
    }
    4096
}

/// Bytes of memory available for new allocations without swapping: `MemAvailable` of
/// `/proc/meminfo` on Linux (the kernel's estimate, counting reclaimable page cache),
/// else free physical pages from `sysconf(_SC_AVPHYS_PAGES)`; 0 when neither is known.
pub(crate) fn os_available_memory() -> usize {
    #[cfg(target_os = "linux")]
    {
        if let Some(bytes) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_mem_available(&text))
        {
            return bytes;
        }
        // SAFETY: as in `page_size`.
        let pages = unsafe { libc::sysconf(libc::_SC_AVPHYS_PAGES) };
        if let Ok(pages) = usize::try_from(pages) {
            return pages.saturating_mul(page_size());
        }
    }
    0
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub(crate) fn parse_mem_available(meminfo: &str) -> Option<usize> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemAvailable:")?;
        let mut parts = rest.split_whitespace();
        let value: usize = parts.next()?.parse().ok()?;
        let scale = match parts.next() {
            Some("kB") => 1024,
            None => 1,
            Some(_) => return None,
        };
        value.checked_mul(scale)
    })
}

/// `size` rounded up to a multiple of `page` (a power of two), or `None` on overflow.
pub(crate) fn round_to_pages(size: usize, page: usize) -> Option<usize> {
    Some(size.checked_add(page - 1)? & !(page - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_parsed_in_bytes() {
        let text = "MemTotal:       16318412 kB\nMemFree:          512000 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(8_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
    }

    #[test]
    fn the_os_reports_a_page_size_and_some_memory() {
        let page = page_size();
        assert!(page.is_power_of_two() && page >= 4096);
        assert!(os_available_memory() > 0);
    }

    #[test]
    fn sizes_round_up_to_whole_pages() {
        assert_eq!(round_to_pages(1, 4096), Some(4096));
        assert_eq!(round_to_pages(4096, 4096), Some(4096));
        assert_eq!(round_to_pages(4097, 4096), Some(8192));
        assert_eq!(round_to_pages(usize::MAX, 4096), None);
    }
}
