//! NUMA topology (read from `/sys/devices/system/node`, or injected), the placement of workers
//! on nodes, thread pinning, and the per-node statistics.

use std::path::Path;

use crate::error::SchedulingError;

/// One NUMA node: its id and the CPUs that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaNode {
    /// The kernel's node number (`nodeN`).
    pub id: usize,
    /// CPU numbers of the node, ascending.
    pub cpus: Vec<usize>,
}

/// The machine's NUMA nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaTopology {
    nodes: Vec<NumaNode>,
}

impl NumaTopology {
    /// A topology from explicit nodes (tests, or a machine description): at least one node,
    /// every node with at least one CPU, node ids and CPUs unique.
    pub fn new(mut nodes: Vec<NumaNode>) -> Result<Self, SchedulingError> {
        if nodes.is_empty() {
            return Err(SchedulingError::Topology("no nodes".to_owned()));
        }
        nodes.sort_by_key(|n| n.id);
        let mut seen_cpus = std::collections::BTreeSet::new();
        for node in &mut nodes {
            if node.cpus.is_empty() {
                return Err(SchedulingError::Topology(format!(
                    "node {} has no cpus",
                    node.id
                )));
            }
            node.cpus.sort_unstable();
            node.cpus.dedup();
            for &cpu in &node.cpus {
                if !seen_cpus.insert(cpu) {
                    return Err(SchedulingError::Topology(format!(
                        "cpu {cpu} is in two nodes"
                    )));
                }
            }
        }
        if nodes.windows(2).any(|w| w[0].id == w[1].id) {
            return Err(SchedulingError::Topology("duplicate node id".to_owned()));
        }
        Ok(Self { nodes })
    }

    /// The topology the OS reports (Linux: `/sys/devices/system/node/node*/cpulist`).
    /// `None` where that is missing or unreadable (other systems, restricted containers).
    pub fn detect() -> Option<Self> {
        Self::from_sysfs(Path::new("/sys/devices/system/node")).ok()
    }

    /// Reads a sysfs-style node directory: one `nodeN/cpulist` per node. Nodes without CPUs
    /// (memory-only nodes) are left out.
    pub fn from_sysfs(dir: &Path) -> Result<Self, SchedulingError> {
        let err = |what: String| SchedulingError::Topology(what);
        let entries = std::fs::read_dir(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let mut nodes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| err(format!("{}: {e}", dir.display())))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("node"))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let path = entry.path().join("cpulist");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
            let cpus = parse_cpulist(&text)?;
            if !cpus.is_empty() {
                nodes.push(NumaNode { id, cpus });
            }
        }
        Self::new(nodes)
    }

    /// The nodes, by id.
    pub fn nodes(&self) -> &[NumaNode] {
        &self.nodes
    }

    /// CPUs over all nodes.
    pub fn cpu_count(&self) -> usize {
        self.nodes.iter().map(|n| n.cpus.len()).sum()
    }
}

/// Parses a kernel CPU list such as `0-3,8-11,16`.
pub(crate) fn parse_cpulist(text: &str) -> Result<Vec<usize>, SchedulingError> {
    let bad = |part: &str| SchedulingError::Topology(format!("bad cpulist entry {part:?}"));
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad(part));
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo > hi {
                    return Err(bad(part));
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(num(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The node index (into `topology.nodes()`) of each of `workers` workers: each node gets a
/// share of the workers proportional to its CPUs (largest remainder), in contiguous blocks,
/// so that workers of a node are neighbours in the steal order too.
pub(crate) fn place_workers(workers: usize, topology: &NumaTopology) -> Vec<usize> {
    let total = topology.cpu_count().max(1);
    let nodes = topology.nodes();
    let mut quota: Vec<usize> = nodes
        .iter()
        .map(|n| workers * n.cpus.len() / total)
        .collect();
    let mut rest = workers - quota.iter().sum::<usize>();
    // Largest remainders first; ties go to the lower node id.
    let mut by_remainder: Vec<usize> = (0..nodes.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse((workers * nodes[i].cpus.len()) % total));
    for &i in by_remainder.iter().cycle() {
        if rest == 0 {
            break;
        }
        quota[i] += 1;
        rest -= 1;
    }
    quota
        .iter()
        .enumerate()
        .flat_map(|(node, &q)| std::iter::repeat_n(node, q))
        .collect()
}

/// Pins the calling thread to `cpus`. `false` where the OS refused (a CPU outside the
/// process's allowed set) or on systems without `sched_setaffinity`.
pub(crate) fn pin_current_thread(cpus: &[usize]) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `cpu_set_t` is plain data; zeroed is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let max = 8 * size_of::<libc::cpu_set_t>();
        for &cpu in cpus.iter().filter(|&&c| c < max) {
            // SAFETY: `cpu` is below the set's capacity.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        // SAFETY: pid 0 is the calling thread; `set` is a valid set of the given size.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        false
    }
}

/// The CPUs the calling thread may run on (Linux), for checks of the pinning.
pub fn current_thread_cpus() -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: as in `pin_current_thread`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set of the given size; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return None;
        }
        let max = 8 * size_of::<libc::cpu_set_t>();
        // SAFETY: `cpu` is below the set's capacity.
        Some(
            (0..max)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
                .collect(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Per-node view of the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaStats {
    /// Whether workers were placed and pinned per node (`SchedulerConfig::numa_aware`).
    pub numa_aware: bool,
    /// One entry per node of the topology.
    pub nodes: Vec<NodeStats>,
}

/// One node's workers and what they did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// The kernel's node number.
    pub node: usize,
    /// The node's CPUs.
    pub cpus: Vec<usize>,
    /// Workers placed on the node (empty unless `numa_aware`).
    pub workers: Vec<usize>,
    /// How many of those the OS actually pinned to the node's CPUs.
    pub pinned_workers: usize,
    /// Jobs run by the node's workers.
    pub executed: u64,
    /// Batches its workers stole from workers of the same node.
    pub stolen_same_node: u64,
    /// Batches its workers stole from workers of other nodes.
    pub stolen_cross_node: u64,
}

#[cfg(all(test, not(perflab_loom)))]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn topo(sizes: &[usize]) -> NumaTopology {
        let mut next = 0;
        NumaTopology::new(
            sizes
                .iter()
                .enumerate()
                .map(|(id, &n)| {
                    let cpus = (next..next + n).collect();
                    next += n;
                    NumaNode { id, cpus }
                })
                .collect(),
        )
        .expect("valid")
    }

    #[test]
    fn parses_kernel_cpulists() {
        assert_eq!(
            parse_cpulist("0-3,8-9,12\n").expect("ok"),
            vec![0, 1, 2, 3, 8, 9, 12]
        );
        assert_eq!(parse_cpulist("5").expect("ok"), vec![5]);
        assert_eq!(parse_cpulist("\n").expect("ok"), Vec::<usize>::new());
        assert!(parse_cpulist("3-1").is_err());
        assert!(parse_cpulist("a").is_err());
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (node, list) in [("node0", "0-1\n"), ("node1", "2-3\n"), ("node2", "\n")] {
            std::fs::create_dir(dir.path().join(node)).expect("mkdir");
            std::fs::write(dir.path().join(node).join("cpulist"), list).expect("write");
        }
        std::fs::create_dir(dir.path().join("power")).expect("mkdir");
        let t = NumaTopology::from_sysfs(dir.path()).expect("topology");
        assert_eq!(t.nodes().len(), 2, "the memory-only node2 is left out");
        assert_eq!(
            t.nodes()[1],
            NumaNode {
                id: 1,
                cpus: vec![2, 3]
            }
        );
    }

    #[test]
    fn this_machine_reports_at_least_one_node() {
        if let Some(t) = NumaTopology::detect() {
            assert!(!t.nodes().is_empty());
            assert!(t.cpu_count() >= 1);
        }
    }

    #[test]
    fn rejects_bad_topologies() {
        assert!(NumaTopology::new(Vec::new()).is_err());
        assert!(
            NumaTopology::new(vec![NumaNode {
                id: 0,
                cpus: vec![]
            }])
            .is_err()
        );
        let twice = vec![
            NumaNode {
                id: 0,
                cpus: vec![0],
            },
            NumaNode {
                id: 1,
                cpus: vec![0],
            },
        ];
        assert!(NumaTopology::new(twice).is_err());
        let same_id = vec![
            NumaNode {
                id: 0,
                cpus: vec![0],
            },
            NumaNode {
                id: 0,
                cpus: vec![1],
            },
        ];
        assert!(NumaTopology::new(same_id).is_err());
    }

    #[test]
    fn placement_follows_cpu_shares() {
        assert_eq!(place_workers(4, &topo(&[4, 4])), vec![0, 0, 1, 1]);
        assert_eq!(place_workers(3, &topo(&[2, 2])), vec![0, 0, 1]);
        assert_eq!(place_workers(4, &topo(&[6, 2])), vec![0, 0, 0, 1]);
        assert_eq!(place_workers(2, &topo(&[1, 1, 1, 1])), vec![0, 1]);
        assert_eq!(place_workers(2, &topo(&[2])), vec![0, 0]);
    }

    proptest! {
        #[test]
        fn placement_is_proportional_and_complete(
            sizes in proptest::collection::vec(1usize..16, 1..6),
            workers in 1usize..64,
        ) {
            let t = topo(&sizes);
            let p = place_workers(workers, &t);
            prop_assert_eq!(p.len(), workers);
            prop_assert!(p.windows(2).all(|w| w[0] <= w[1]), "contiguous blocks");
            let total: usize = sizes.iter().sum();
            for (node, &n) in sizes.iter().enumerate() {
                let got = p.iter().filter(|&&x| x == node).count() as f64;
                let ideal = (workers * n) as f64 / total as f64;
                prop_assert!((got - ideal).abs() < 1.0 + 1e-9, "node {} got {} ideal {}", node, got, ideal);
            }
        }
    }
}
