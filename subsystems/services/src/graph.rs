//! The dependency graph of the registered services: cycle rejection at insertion,
//! topological orders, closures and levels.

use std::collections::HashSet;

use crate::error::RegistrationError;
use crate::id::{IdMap, ServiceId};

/// Services and the services each one depends on. An edge may name a service that is not
/// registered yet (a forward reference); an insertion that would close a cycle is refused,
/// so the registered graph is always acyclic.
#[derive(Debug, Clone, Default)]
pub struct DependencyGraph {
    /// Registered services in registration order (the tie-break of every order below).
    order: Vec<ServiceId>,
    /// Registered service -> (registration index, dependencies).
    nodes: IdMap<(usize, Vec<ServiceId>)>,
    /// Any id, registered or not -> the registered services that depend on it.
    dependents: IdMap<Vec<ServiceId>>,
}

impl DependencyGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `id` with `dependencies`. Refuses a duplicate id, a repeated dependency and
    /// any edge set that would close a cycle (the error names the cycle); on refusal the
    /// graph is unchanged.
    pub fn add(
        &mut self,
        id: impl Into<ServiceId>,
        dependencies: impl IntoIterator<Item = impl Into<ServiceId>>,
    ) -> Result<(), RegistrationError> {
        let id = id.into();
        let deps: Vec<ServiceId> = dependencies.into_iter().map(Into::into).collect();
        if self.nodes.contains_key(&id) {
            return Err(RegistrationError::Duplicate(id));
        }
        let mut seen = HashSet::with_capacity(deps.len());
        for d in &deps {
            if !seen.insert(d.as_str()) {
                return Err(RegistrationError::DuplicateDependency {
                    service: id,
                    dependency: d.clone(),
                });
            }
        }
        if let Some(cycle) = self.cycle_through(&id, &deps) {
            return Err(RegistrationError::Cycle { service: id, cycle });
        }
        for d in &deps {
            self.dependents
                .entry(d.clone())
                .or_default()
                .push(id.clone());
        }
        self.nodes.insert(id.clone(), (self.order.len(), deps));
        self.order.push(id);
        Ok(())
    }

    /// Whether `id` is registered.
    pub fn contains(&self, id: &str) -> bool {
        self.nodes.contains_key(id)
    }

    /// Number of registered services.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The registered services, in registration order.
    pub fn ids(&self) -> &[ServiceId] {
        &self.order
    }

    /// The declared dependencies of `id` (`None` when it is not registered).
    pub fn dependencies(&self, id: &str) -> Option<&[ServiceId]> {
        self.nodes.get(id).map(|(_, d)| d.as_slice())
    }

    /// The registered services that depend on `id` directly.
    pub fn dependents(&self, id: &str) -> &[ServiceId] {
        self.dependents.get(id).map_or(&[], Vec::as_slice)
    }

    /// `(service, dependency)` for every dependency that is not registered.
    pub fn missing_dependencies(&self) -> Vec<(ServiceId, ServiceId)> {
        self.order
            .iter()
            .flat_map(|s| {
                self.nodes[s]
                    .1
                    .iter()
                    .filter(|d| !self.nodes.contains_key(*d))
                    .map(move |d| (s.clone(), d.clone()))
            })
            .collect()
    }

    /// Every registered service, each after all of its (registered) dependencies; among
    /// services whose dependencies are all placed, the earlier registered comes first (Kahn's
    /// algorithm with a heap keyed by registration index).
    pub fn topological_order(&self) -> Vec<ServiceId> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut pending: Vec<usize> = self
            .order
            .iter()
            .map(|s| self.registered_deps(s).count())
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = pending
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == 0)
            .map(|(i, _)| Reverse(i))
            .collect();
        let mut out = Vec::with_capacity(self.order.len());
        while let Some(Reverse(i)) = ready.pop() {
            let id = &self.order[i];
            for dependent in self.dependents(id) {
                let j = self.nodes[dependent].0;
                pending[j] -= 1;
                if pending[j] == 0 {
                    ready.push(Reverse(j));
                }
            }
            out.push(id.clone());
        }
        out
    }

    /// `id` and everything it depends on transitively (registered services only), each after
    /// its dependencies: the order a lazy first request initialises them in when run one at
    /// a time. `None` when `id` is not registered.
    pub fn initialization_order(&self, id: &str) -> Option<Vec<ServiceId>> {
        let (root, _) = self.nodes.get_key_value(id)?;
        let mut out = Vec::new();
        let mut done: HashSet<&str> = HashSet::new();
        // Iterative post-order DFS: (node, index of the next dependency to visit).
        let mut stack: Vec<(&ServiceId, usize)> = vec![(root, 0)];
        done.insert(root);
        while let Some((node, next)) = stack.last_mut() {
            let deps = &self.nodes[*node].1;
            match deps[*next..]
                .iter()
                .position(|d| self.nodes.contains_key(d) && !done.contains(d.as_str()))
            {
                Some(k) => {
                    let d = &deps[*next + k];
                    *next += k + 1;
                    done.insert(d);
                    stack.push((d, 0));
                }
                None => {
                    out.push((*node).clone());
                    stack.pop();
                }
            }
        }
        Some(out)
    }

    /// The registered services grouped by level: level 0 has no registered dependencies,
    /// level `k` depends on something at level `k - 1` and nothing higher. Services of one
    /// level are independent of each other. The number of levels is the graph's depth.
    pub fn levels(&self) -> Vec<Vec<ServiceId>> {
        let mut level: IdMap<usize> = IdMap::default();
        let mut out: Vec<Vec<ServiceId>> = Vec::new();
        for id in self.topological_order() {
            let l = self
                .registered_deps(&id)
                .map(|d| level[d] + 1)
                .max()
                .unwrap_or(0);
            if out.len() <= l {
                out.resize_with(l + 1, Vec::new);
            }
            out[l].push(id.clone());
            level.insert(id, l);
        }
        out
    }

    /// The registered dependencies of a registered `id`.
    fn registered_deps<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a ServiceId> + 'a {
        self.nodes[id]
            .1
            .iter()
            .filter(|d| self.nodes.contains_key(*d))
    }

    /// A path `id -> deps[i] -> ... -> id` through the registered edges, if adding `id` with
    /// `deps` would close one. `id` is not registered yet, so the only edges into it are
    /// forward references from registered services; a depth-first search from its new
    /// dependencies finds one of those, and the search stack is the cycle.
    fn cycle_through(&self, id: &ServiceId, deps: &[ServiceId]) -> Option<Vec<ServiceId>> {
        if deps.iter().any(|d| d == id) {
            return Some(vec![id.clone(), id.clone()]);
        }
        let mut visited: HashSet<&str> = HashSet::new();
        for start in deps {
            if !self.nodes.contains_key(start) || !visited.insert(start) {
                continue;
            }
            let mut stack: Vec<(&ServiceId, usize)> = vec![(start, 0)];
            while let Some((node, next)) = stack.last_mut() {
                let node_deps = &self.nodes[*node].1;
                let Some(d) = node_deps.get(*next) else {
                    stack.pop();
                    continue;
                };
                *next += 1;
                if d == id {
                    let mut cycle = Vec::with_capacity(stack.len() + 2);
                    cycle.push(id.clone());
                    cycle.extend(stack.iter().map(|(n, _)| (*n).clone()));
                    cycle.push(id.clone());
                    return Some(cycle);
                }
                if self.nodes.contains_key(d) && visited.insert(d) {
                    stack.push((d, 0));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[ServiceId]) -> Vec<&str> {
        v.iter().map(ServiceId::as_str).collect()
    }

    fn diamond() -> DependencyGraph {
        let mut g = DependencyGraph::new();
        g.add("app", ["lsp", "index"])
            .expect("forward refs allowed");
        g.add("lsp", ["config"]).expect("ok");
        g.add("index", ["config", "fs"]).expect("ok");
        g.add("config", Vec::<ServiceId>::new()).expect("ok");
        g.add("fs", ["config"]).expect("ok");
        g
    }

    #[test]
    fn orders_put_dependencies_first() {
        let g = diamond();
        assert_eq!(
            ids(&g.topological_order()),
            ["config", "lsp", "fs", "index", "app"]
        );
        assert_eq!(
            ids(&g.initialization_order("index").expect("registered")),
            ["config", "fs", "index"]
        );
        let levels = g.levels();
        let levels: Vec<Vec<&str>> = levels.iter().map(|l| ids(l)).collect();
        assert_eq!(
            levels,
            [
                vec!["config"],
                vec!["lsp", "fs"],
                vec!["index"],
                vec!["app"]
            ]
        );
        assert_eq!(ids(g.dependents("config")), ["lsp", "index", "fs"]);
        assert!(g.initialization_order("nope").is_none());
    }

    #[test]
    fn a_cycle_through_forward_references_is_named() {
        let mut g = DependencyGraph::new();
        g.add("a", ["b"]).expect("ok");
        g.add("b", ["c"]).expect("ok");
        let err = g.add("c", ["a"]).expect_err("cycle");
        match err {
            RegistrationError::Cycle { service, cycle } => {
                assert_eq!(service, "c");
                assert_eq!(ids(&cycle), ["c", "a", "b", "c"]);
            }
            other => panic!("unexpected {other}"),
        }
        assert!(!g.contains("c"));
        assert_eq!(g.len(), 2);
        assert_eq!(g.missing_dependencies(), [("b".into(), "c".into())]);
    }

    #[test]
    fn self_loops_duplicates_and_repeats_are_refused() {
        let mut g = DependencyGraph::new();
        assert!(matches!(
            g.add("a", ["a"]),
            Err(RegistrationError::Cycle { cycle, .. }) if cycle.len() == 2
        ));
        g.add("a", Vec::<ServiceId>::new()).expect("ok");
        assert_eq!(
            g.add("a", Vec::<ServiceId>::new()),
            Err(RegistrationError::Duplicate("a".into()))
        );
        assert!(matches!(
            g.add("b", ["a", "a"]),
            Err(RegistrationError::DuplicateDependency { .. })
        ));
        assert_eq!(g.len(), 1);
        assert!(g.dependents("a").is_empty());
    }

    #[test]
    fn unregistered_dependencies_are_left_out_of_orders() {
        let mut g = DependencyGraph::new();
        g.add("a", ["ghost"]).expect("ok");
        assert_eq!(ids(&g.topological_order()), ["a"]);
        assert_eq!(
            ids(&g.initialization_order("a").expect("registered")),
            ["a"]
        );
        assert_eq!(g.levels().len(), 1);
    }
}
