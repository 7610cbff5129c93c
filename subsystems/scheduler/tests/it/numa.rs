//! NUMA placement and pinning against an injected topology, and the OS's own topology.

use rust_ai_ide_scheduler::{
    NumaNode, NumaTopology, SchedulerConfig, WorkStealingScheduler, current_thread_cpus, join,
};

fn two_nodes() -> NumaTopology {
    // Two nodes of one CPU each: CPUs 0 and 1 exist on any machine this runs on that has two.
    NumaTopology::new(vec![
        NumaNode {
            id: 0,
            cpus: vec![0],
        },
        NumaNode {
            id: 1,
            cpus: vec![1],
        },
    ])
    .expect("topology")
}

#[test]
fn workers_are_placed_and_pinned_per_node() {
    let allowed = current_thread_cpus().unwrap_or_default();
    let s = WorkStealingScheduler::new(SchedulerConfig {
        worker_threads: 4,
        numa_aware: true,
        topology: Some(two_nodes()),
        ..SchedulerConfig::default()
    })
    .expect("scheduler");
    let numa = s.numa_stats().expect("an injected topology");
    assert!(numa.numa_aware);
    assert_eq!(numa.nodes.len(), 2);
    assert_eq!(numa.nodes[0].workers, vec![0, 1]);
    assert_eq!(numa.nodes[1].workers, vec![2, 3]);
    let stats = s.worker_stats();
    assert_eq!(
        stats.iter().map(|w| w.numa_node).collect::<Vec<_>>(),
        vec![Some(0), Some(0), Some(1), Some(1)]
    );
    // Pinning succeeds exactly where the CPU is one this process may use.
    for (node, cpu) in [(0, 0), (1, 1)] {
        let expected = if cfg!(target_os = "linux") && allowed.contains(&cpu) {
            2
        } else {
            0
        };
        assert_eq!(numa.nodes[node].pinned_workers, expected, "node {node}");
    }
    // Work still runs on the pinned workers, and a pinned worker sees its node's CPU set.
    let (sum, cpus) = s
        .install(|| join(|| (0..1000u64).sum::<u64>(), current_thread_cpus))
        .expect("installed");
    assert_eq!(sum, 499_500);
    if let Some(cpus) = cpus.filter(|_| allowed.contains(&0) && allowed.contains(&1)) {
        assert_eq!(
            cpus.len(),
            1,
            "a pinned worker runs on one node's single cpu: {cpus:?}"
        );
    }
}

#[test]
fn without_numa_awareness_nothing_is_placed() {
    let s = WorkStealingScheduler::new(SchedulerConfig {
        worker_threads: 2,
        topology: Some(two_nodes()),
        ..SchedulerConfig::default()
    })
    .expect("scheduler");
    let numa = s.numa_stats().expect("an injected topology");
    assert!(!numa.numa_aware);
    assert!(
        numa.nodes
            .iter()
            .all(|n| n.workers.is_empty() && n.pinned_workers == 0)
    );
    assert!(
        s.worker_stats()
            .iter()
            .all(|w| w.numa_node.is_none() && !w.pinned)
    );
}

#[test]
fn the_os_topology_covers_every_worker() {
    let Some(topology) = NumaTopology::detect() else {
        // No /sys/devices/system/node here: the scheduler then reports no NUMA view.
        let s = WorkStealingScheduler::new(SchedulerConfig::with_workers(1)).expect("scheduler");
        assert!(s.numa_stats().is_none());
        return;
    };
    let s = WorkStealingScheduler::new(SchedulerConfig {
        worker_threads: 3,
        numa_aware: true,
        ..SchedulerConfig::default()
    })
    .expect("scheduler");
    let numa = s.numa_stats().expect("detected");
    assert_eq!(numa.nodes.len(), topology.nodes().len());
    let placed: usize = numa.nodes.iter().map(|n| n.workers.len()).sum();
    assert_eq!(placed, 3);
}
