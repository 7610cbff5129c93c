//! `memory/vmm_random_read/*`: random 4 KiB reads over a generated workspace, through the
//! virtual memory manager's mapping (`perflab`) and through plain positioned reads (`read`).

use std::collections::BTreeMap;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::stats::LatencySummary;
use super::{LoadOptions, LoadOutcome};
use crate::bmf::Measure;
use crate::catalog::VMM_SUBJECTS;
use crate::error::ScenarioError;

/// Bytes per read: one page.
pub(crate) const READ_SIZE: usize = 4096;
/// Size of each generated workspace file; many files, like a source tree, not one blob.
const FILE_SIZE: u64 = 4 << 20;
/// Seed of the read sequence, so every subject reads the same offsets in the same order.
const SEED: u64 = 0x7065_7266_6c61_6221;

/// How much data and work one run uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Total bytes of the generated workspace.
    pub(crate) workspace_bytes: u64,
    /// Reads per (scenario, subject).
    pub(crate) reads: usize,
    /// Time bound per (scenario, subject): a slow disk ends the run early, with fewer reads.
    pub(crate) time_limit: Duration,
}

impl Plan {
    pub(crate) fn new(opts: LoadOptions) -> Self {
        if opts.quick {
            Self {
                workspace_bytes: 64 << 20,
                reads: 50_000,
                time_limit: Duration::from_secs(5),
            }
        } else {
            Self {
                workspace_bytes: 256 << 20,
                reads: 200_000,
                time_limit: Duration::from_secs(20),
            }
        }
    }
}

/// Runs the selected `memory/vmm_random_read/*` scenarios for every subject.
pub(super) fn run(
    ids: &[&str],
    opts: LoadOptions,
    outcome: &mut LoadOutcome,
) -> Result<(), ScenarioError> {
    let plan = Plan::new(opts);
    let ws = Workspace::generate(plan.workspace_bytes)?;
    let reads = ws.random_reads(plan.reads, SEED);
    for id in ids {
        let prefetch = id.ends_with("/prefetch");
        for subject in VMM_SUBJECTS {
            // Every subject starts from a cold page cache, so the earlier subject's reads do
            // not warm the data for the next one and prefetching has something to do.
            ws.evict();
            let result = match subject {
                "perflab" => perflab::measure(&ws, &reads, prefetch, plan.time_limit),
                _ => read::measure(&ws, &reads, prefetch, plan.time_limit),
            };
            match result {
                Ok(run) => {
                    eprintln!(
                        "{id}@{subject}: {} reads in {:.2?}",
                        run.latencies_ns.len(),
                        run.elapsed
                    );
                    match run.into_measures() {
                        Some(m) => outcome.bmf.insert(id, subject, m),
                        None => outcome
                            .failed
                            .push((format!("{id}@{subject}"), "no read completed".to_owned())),
                    }
                }
                Err(e) => outcome
                    .failed
                    .push((format!("{id}@{subject}"), e.to_string())),
            }
        }
    }
    Ok(())
}

/// A generated workspace: `n` files of `FILE_SIZE` bytes whose content is a known function
/// of (file, offset), so every read can be checked.
#[derive(Debug)]
pub(crate) struct Workspace {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
}

/// One read: file index and byte offset (page aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadAt {
    pub(crate) file: usize,
    pub(crate) offset: u64,
}

impl Workspace {
    /// Writes `total_bytes` (rounded up to whole files) of content into a new temp folder and
    /// syncs it to disk, so that its pages can later be evicted from the page cache.
    pub(crate) fn generate(total_bytes: u64) -> Result<Self, ScenarioError> {
        let dir = tempfile::Builder::new()
            .prefix("perflab-vmm-")
            .tempdir()
            .map_err(|source| ScenarioError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let n = total_bytes.div_ceil(FILE_SIZE).max(1) as usize;
        let mut files = Vec::with_capacity(n);
        for i in 0..n {
            // Nested folders, like a source tree.
            let path = dir.path().join(format!("src/m{:02}/f{i:04}.bin", i % 16));
            write_file(&path, i)?;
            files.push(path);
        }
        Ok(Self { dir, files })
    }

    /// The workspace root.
    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The files, in generation order (file index = position).
    pub(crate) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// `count` page-aligned random reads from a seeded generator.
    pub(crate) fn random_reads(&self, count: usize, seed: u64) -> Vec<ReadAt> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let pages = FILE_SIZE / READ_SIZE as u64;
        (0..count)
            .map(|_| ReadAt {
                file: rng.random_range(0..self.files.len()),
                offset: rng.random_range(0..pages) * READ_SIZE as u64,
            })
            .collect()
    }

    /// Drops the workspace's pages from the page cache (best effort: Linux only, and only
    /// pages not mapped by anyone).
    pub(crate) fn evict(&self) {
        for path in &self.files {
            if let Ok(f) = File::open(path) {
                fadvise(&f, Advice::DontNeed);
            }
        }
    }
}

/// The expected 8-byte word at byte `offset` (a multiple of 8) of file `file`.
pub(crate) fn expected_word(file: usize, offset: u64) -> u64 {
    splitmix64(((file as u64) << 40) ^ (offset / 8))
}

/// Checks the first word of a page read at `at`; a subject that returns the wrong bytes
/// fails rather than being measured.
pub(crate) fn check_page(at: ReadAt, page: &[u8]) -> Result<u64, String> {
    let word = page
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("short read at file {} offset {}", at.file, at.offset))?;
    if word == expected_word(at.file, at.offset) {
        Ok(word)
    } else {
        Err(format!(
            "wrong bytes at file {} offset {}: {word:#x}",
            at.file, at.offset
        ))
    }
}

/// Raw result of one (scenario, subject) run.
#[derive(Debug)]
pub(crate) struct RunResult {
    pub(crate) latencies_ns: Vec<u64>,
    pub(crate) elapsed: Duration,
}

impl RunResult {
    /// The BMF measures: throughput (reads/s) and latency percentiles (ns) with bounds.
    fn into_measures(mut self) -> Option<BTreeMap<String, Measure>> {
        let count = self.latencies_ns.len();
        let lat = LatencySummary::from_samples(&mut self.latencies_ns)?;
        let secs = self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let mut m = BTreeMap::new();
        m.insert("throughput".to_owned(), Measure::point(count as f64 / secs));
        m.insert("latency_p50".to_owned(), Measure::bounded(lat.p50));
        m.insert("latency_p99".to_owned(), Measure::bounded(lat.p99));
        m.insert("latency_p999".to_owned(), Measure::bounded(lat.p999));
        Some(m)
    }
}

/// Times `read_page` over `reads` until done or `limit` has passed; every page is checked.
pub(crate) fn timed_reads(
    reads: &[ReadAt],
    limit: Duration,
    mut read_page: impl FnMut(ReadAt, &mut [u8; READ_SIZE]) -> Result<(), String>,
) -> Result<RunResult, String> {
    let mut buf = [0u8; READ_SIZE];
    let mut latencies_ns = Vec::with_capacity(reads.len());
    let mut sum = 0u64;
    let start = Instant::now();
    for &at in reads {
        let t = Instant::now();
        read_page(at, &mut buf)?;
        latencies_ns.push(t.elapsed().as_nanos() as u64);
        sum = sum.wrapping_add(check_page(at, &buf)?);
        if start.elapsed() > limit {
            break;
        }
    }
    let elapsed = start.elapsed();
    black_box(sum);
    Ok(RunResult {
        latencies_ns,
        elapsed,
    })
}

/// Kernel page cache advice.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Advice {
    /// Start reading the file in now.
    WillNeed,
    /// Drop the file's cached pages.
    DontNeed,
}

/// `posix_fadvise` over the whole file; advice only, so failures are ignored.
#[cfg(target_os = "linux")]
pub(crate) fn fadvise(file: &File, advice: Advice) {
    use std::os::fd::AsRawFd;
    let advice = match advice {
        Advice::WillNeed => libc::POSIX_FADV_WILLNEED,
        Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
    };
    // SAFETY: the descriptor is open for the duration of the call; the call reads no memory.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, advice);
    }
}

/// Elsewhere the page cache is left as it is (the scenario still runs, warm).
#[cfg(not(target_os = "linux"))]
pub(crate) fn fadvise(_file: &File, _advice: Advice) {}

fn write_file(path: &Path, index: usize) -> Result<(), ScenarioError> {
    let io = |source| ScenarioError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = File::create(path).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    for off in (0..FILE_SIZE).step_by(8) {
        w.write_all(&expected_word(index, off).to_le_bytes())
            .map_err(io)?;
    }
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    // Synced, so the pages are clean and `evict` can drop them.
    file.sync_all().map_err(io)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `read` anchor: `pread` of the same pages through open files.
mod read {
    use super::*;

    pub(super) fn measure(
        ws: &Workspace,
        reads: &[ReadAt],
        prefetch: bool,
        limit: Duration,
    ) -> Result<RunResult, ScenarioError> {
        let files: Vec<File> = ws
            .files()
            .iter()
            .map(|p| {
                File::open(p).map_err(|source| ScenarioError::Io {
                    path: p.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        if prefetch {
            // The plain-file equivalent of prefetching a region: ask the kernel to read ahead.
            for f in &files {
                fadvise(f, Advice::WillNeed);
            }
        }
        timed_reads(reads, limit, |at, buf| {
            files[at.file]
                .read_exact_at(buf, at.offset)
                .map_err(|e| e.to_string())
        })
        .map_err(|message| ScenarioError::Subject {
            scenario: "memory/vmm_random_read".to_owned(),
            subject: "read".to_owned(),
            message,
        })
    }
}

/// The `perflab` subject: the virtual memory manager maps the workspace, then every read
/// goes through its region access (`read_at`: region lookup, shared lock, copy).
mod perflab {
    use rust_ai_ide_memory::{MemoryError, VirtualMemoryManager};

    use super::*;

    pub(super) fn measure(
        ws: &Workspace,
        reads: &[ReadAt],
        prefetch: bool,
        limit: Duration,
    ) -> Result<RunResult, ScenarioError> {
        let fail = |message: String| ScenarioError::Subject {
            scenario: "memory/vmm_random_read".to_owned(),
            subject: "perflab".to_owned(),
            message,
        };
        let vmm_err = |e: MemoryError| fail(e.to_string());
        let vmm = VirtualMemoryManager::new();
        let mapping = vmm.map_workspace_to_disk(ws.root()).map_err(vmm_err)?;
        // Region ids by file index, so the timed loop does no path lookups.
        let ids: Vec<String> = ws
            .files()
            .iter()
            .map(|p| {
                mapping
                    .file(p)
                    .map(|f| f.region.id.clone())
                    .ok_or_else(|| fail(format!("{} was not mapped", p.display())))
            })
            .collect::<Result<_, _>>()?;
        if prefetch {
            for file in &mapping.files {
                vmm.prefetch_region(&file.region).map_err(vmm_err)?;
            }
        }
        let run = timed_reads(reads, limit, |at, buf| {
            let offset = usize::try_from(at.offset).map_err(|e| e.to_string())?;
            match vmm.read_at(&ids[at.file], offset, buf) {
                Ok(n) if n == buf.len() => Ok(()),
                Ok(n) => Err(format!("short read of {n} bytes at {}", at.offset)),
                Err(e) => Err(e.to_string()),
            }
        })
        .map_err(fail)?;
        // Unmapped, so the next subject's eviction can drop these pages.
        vmm.unmap_workspace(&mapping).map_err(vmm_err)?;
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(600);

    #[test]
    fn read_sequence_is_seeded_aligned_and_in_range() {
        let ws = Workspace::generate(2 * FILE_SIZE).expect("workspace");
        assert_eq!(ws.files().len(), 2);
        let a = ws.random_reads(1000, 7);
        assert_eq!(a, ws.random_reads(1000, 7));
        assert_ne!(a, ws.random_reads(1000, 8));
        for r in &a {
            assert!(r.file < 2);
            assert_eq!(r.offset % READ_SIZE as u64, 0);
            assert!(r.offset + READ_SIZE as u64 <= FILE_SIZE);
        }
        // Both files are used.
        assert!(a.iter().any(|r| r.file == 0) && a.iter().any(|r| r.file == 1));
    }

    #[test]
    fn generated_files_hold_the_expected_words() {
        let ws = Workspace::generate(1).expect("workspace");
        let bytes = std::fs::read(&ws.files()[0]).expect("readable");
        assert_eq!(bytes.len() as u64, FILE_SIZE);
        let at = ReadAt {
            file: 0,
            offset: 3 * READ_SIZE as u64,
        };
        let page = &bytes[at.offset as usize..][..READ_SIZE];
        assert_eq!(check_page(at, page), Ok(expected_word(0, at.offset)));
        let wrong = ReadAt { file: 0, offset: 0 };
        assert!(check_page(wrong, page).is_err());
        assert!(check_page(at, &page[..4]).is_err());
    }

    #[test]
    fn both_subjects_read_the_same_checked_pages() {
        let ws = Workspace::generate(2 * FILE_SIZE).expect("workspace");
        let reads = ws.random_reads(500, SEED);
        for prefetch in [false, true] {
            ws.evict();
            let p = perflab::measure(&ws, &reads, prefetch, LIMIT).expect("perflab reads");
            ws.evict();
            let r = read::measure(&ws, &reads, prefetch, LIMIT).expect("plain reads");
            // Every page was checked against the generator inside `timed_reads`.
            assert_eq!(p.latencies_ns.len(), reads.len());
            assert_eq!(r.latencies_ns.len(), reads.len());
        }
    }

    #[test]
    fn a_subject_returning_wrong_bytes_fails() {
        let reads = [ReadAt { file: 0, offset: 0 }];
        let err = timed_reads(&reads, LIMIT, |_, buf| {
            buf.fill(0xAB);
            Ok(())
        })
        .expect_err("wrong bytes are rejected");
        assert!(err.contains("wrong bytes"), "{err}");
    }

    #[test]
    fn the_time_bound_stops_a_run_early() {
        let reads = vec![ReadAt { file: 0, offset: 0 }; 1000];
        let run = timed_reads(&reads, Duration::ZERO, |at, buf| {
            buf[..8].copy_from_slice(&expected_word(at.file, at.offset).to_le_bytes());
            Ok(())
        })
        .expect("valid pages");
        assert_eq!(run.latencies_ns.len(), 1);
    }

    #[test]
    fn measures_are_throughput_and_bounded_percentiles() {
        let run = RunResult {
            latencies_ns: (1..=10_000).collect(),
            elapsed: Duration::from_secs(2),
        };
        let m = run.into_measures().expect("non-empty");
        let names: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["latency_p50", "latency_p99", "latency_p999", "throughput"]
        );
        assert_eq!(m["throughput"].value, 5000.0);
        assert_eq!(m["latency_p99"].value, 9900.0);
        for name in ["latency_p50", "latency_p99", "latency_p999"] {
            let x = m[name];
            let (lo, hi) = (x.lower_value.expect("lower"), x.upper_value.expect("upper"));
            assert!(lo <= x.value && x.value <= hi, "{name}: {x:?}");
        }
        let empty = RunResult {
            latencies_ns: Vec::new(),
            elapsed: Duration::from_secs(1),
        };
        assert!(empty.into_measures().is_none());
    }
}
