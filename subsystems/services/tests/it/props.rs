//! Property tests over random graphs: cycles are always refused (and the named cycle is real),
//! orders respect dependencies, and every service is initialised exactly once, dependencies
//! first, under concurrent requests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use rust_ai_ide_services::{
    DependencyGraph, LazyServiceManager, RegistrationError, ResourceCapacity, ResourceLimiter,
    ServiceDescriptor, ServiceId,
};

use crate::fixture::{Log, Node, Script, assert_dependencies_first, register, runtime};

fn name(i: usize) -> String {
    format!("s{i}")
}

/// A random DAG on `n` services (edges only to lower indices, at most 4 per service) and a
/// random registration order, so that forward references are common.
fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<usize>)> {
    (1usize..28).prop_flat_map(|n| {
        let edges = (0..n)
            .map(|i| {
                proptest::collection::vec(any::<Index>(), 0..=4).prop_map(move |picks| {
                    let mut deps: Vec<usize> = if i == 0 {
                        Vec::new()
                    } else {
                        picks.iter().map(|p| p.index(i)).collect()
                    };
                    deps.sort_unstable();
                    deps.dedup();
                    deps
                })
            })
            .collect::<Vec<_>>();
        let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        (edges, order)
    })
}

/// A random directed graph, cycles allowed, and a registration order.
fn digraph() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<usize>)> {
    (1usize..12).prop_flat_map(|n| {
        let edges = proptest::collection::vec(
            proptest::collection::vec(any::<Index>(), 0..=3).prop_map(move |picks| {
                let mut deps: Vec<usize> = picks.iter().map(|p| p.index(n)).collect();
                deps.sort_unstable();
                deps.dedup();
                deps
            }),
            n,
        );
        let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        (edges, order)
    })
}

/// Whether `to` is reachable from `from` over `edges` (a reference implementation).
fn reaches(edges: &HashMap<usize, Vec<usize>>, from: usize, to: usize) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![from];
    while let Some(x) = stack.pop() {
        if x == to {
            return true;
        }
        if seen.insert(x) {
            stack.extend(edges.get(&x).into_iter().flatten().copied());
        }
    }
    false
}

fn index_of(id: &ServiceId) -> usize {
    id[1..].parse().expect("s<i>")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cycles_are_always_refused((edges, order) in digraph()) {
        let mut g = DependencyGraph::new();
        let mut accepted: HashMap<usize, Vec<usize>> = HashMap::new();
        for &i in &order {
            let would_cycle = edges[i].iter().any(|&d| d == i || reaches(&accepted, d, i));
            match g.add(name(i), edges[i].iter().map(|&d| name(d))) {
                Ok(()) => {
                    prop_assert!(!would_cycle, "accepted a cycle through s{}", i);
                    accepted.insert(i, edges[i].clone());
                }
                Err(RegistrationError::Cycle { service, cycle }) => {
                    prop_assert!(would_cycle, "refused s{} without a cycle", i);
                    prop_assert_eq!(index_of(&service), i);
                    prop_assert!(cycle.len() >= 2);
                    prop_assert_eq!(cycle.first(), Some(&service));
                    prop_assert_eq!(cycle.last(), Some(&service));
                    // Every step of the named cycle is a real edge (accepted or new).
                    for w in cycle.windows(2) {
                        let (a, b) = (index_of(&w[0]), index_of(&w[1]));
                        let deps = if a == i { &edges[i] } else { &accepted[&a] };
                        prop_assert!(deps.contains(&b), "s{} -> s{} is no edge", a, b);
                    }
                }
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }
        // What was accepted is acyclic: a topological order places every service.
        let topo = g.topological_order();
        prop_assert_eq!(topo.len(), g.len());
        let pos: HashMap<&ServiceId, usize> = topo.iter().enumerate().map(|(p, s)| (s, p)).collect();
        for s in &topo {
            for d in g.dependencies(s).expect("registered") {
                if let Some(&pd) = pos.get(d) {
                    prop_assert!(pd < pos[s]);
                }
            }
        }
    }

    #[test]
    fn closures_and_levels_respect_dependencies((edges, order) in dag()) {
        let mut g = DependencyGraph::new();
        for &i in &order {
            g.add(name(i), edges[i].iter().map(|&d| name(d))).expect("a DAG");
        }
        prop_assert!(g.missing_dependencies().is_empty());
        for i in 0..edges.len() {
            let closure = g.initialization_order(&name(i)).expect("registered");
            prop_assert_eq!(closure.last().map(index_of), Some(i));
            let members: HashSet<usize> = closure.iter().map(index_of).collect();
            prop_assert_eq!(members.len(), closure.len(), "no repeats");
            for j in 0..edges.len() {
                prop_assert_eq!(members.contains(&j), j == i || reaches_dag(&edges, i, j));
            }
        }
        let levels = g.levels();
        let level_of: HashMap<usize, usize> = levels
            .iter()
            .enumerate()
            .flat_map(|(l, ids)| ids.iter().map(move |id| (index_of(id), l)))
            .collect();
        prop_assert_eq!(level_of.len(), edges.len());
        for (i, deps) in edges.iter().enumerate() {
            let expect = deps.iter().map(|d| level_of[d] + 1).max().unwrap_or(0);
            prop_assert_eq!(level_of[&i], expect);
        }
    }

    #[test]
    fn every_service_initialises_once_after_its_dependencies(
        (edges, order) in dag(),
        requests in proptest::collection::vec(any::<Index>(), 1..24),
        fail_mask in any::<u32>(),
    ) {
        let log = Arc::new(Log::default());
        let mut m = LazyServiceManager::with_resource_limiter(
            ResourceLimiter::new(ResourceCapacity::new(u64::MAX, 3)),
        );
        for &i in &order {
            let script = Script { fail: (fail_mask >> (i % 32)) & 1, ..Script::default() };
            register(
                &mut m,
                ServiceDescriptor::new(name(i)).depends_on(edges[i].iter().map(|&d| name(d))),
                &log,
                script,
            )
            .expect("a DAG");
        }
        let m = Arc::new(m);
        let n = edges.len();
        let rt = runtime();
        rt.block_on(async {
            // Two tasks request services concurrently, retrying until each request succeeds
            // (a scripted failure happens once per service).
            let half = requests.len() / 2;
            let tasks: Vec<_> = [requests[..half].to_vec(), requests[half..].to_vec()]
                .into_iter()
                .map(|reqs| {
                    let m = Arc::clone(&m);
                    tokio::spawn(async move {
                        for r in reqs {
                            let id = name(r.index(n));
                            let mut tries = 0;
                            while m.get_service::<Node>(&id).await.is_err() {
                                tries += 1;
                                assert!(tries <= n + 1, "{id} never came up");
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            let all: Vec<String> = (0..n).map(name).collect();
            while m.preload_services(&all).await.is_err() {}
        });
        let counts = log.build_counts();
        prop_assert_eq!(counts.len(), n);
        prop_assert!(counts.values().all(|&c| c == 1), "{:?}", counts);
        assert_dependencies_first(&m, &log.built());
        let stats = m.initialization_stats();
        for (id, s) in &stats.services {
            prop_assert_eq!(s.attempts, s.failures + 1, "{}", id);
        }
        // Shutdown visits dependents before their dependencies.
        let shut = rt.block_on(m.shutdown());
        prop_assert_eq!(shut.len(), n);
        let pos: HashMap<&ServiceId, usize> = shut.iter().enumerate().map(|(p, s)| (s, p)).collect();
        for (i, deps) in edges.iter().enumerate() {
            for d in deps {
                prop_assert!(pos[&ServiceId::from(name(i))] < pos[&ServiceId::from(name(*d))]);
            }
        }
    }
}

/// Whether `j` is a transitive dependency of `i` in a DAG given by `edges`.
fn reaches_dag(edges: &[Vec<usize>], i: usize, j: usize) -> bool {
    let map: HashMap<usize, Vec<usize>> = edges.iter().cloned().enumerate().collect();
    i != j && reaches(&map, i, j)
}
