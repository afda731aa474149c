//! A generic dependency graph and its bounded parallel walk. Nothing here knows about AWS or resource kinds:
//! nodes are indices, an edge `a -> b` means "a must finish before b starts".
//!
//! The walk runs every node whose prerequisites all succeeded, at most `parallelism` at once. When a node fails,
//! everything downstream of it is skipped (and says which failure it is waiting on), while independent branches
//! carry on: one broken subnet does not stop the security groups.

use std::collections::VecDeque;
use std::future::Future;

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One of a walk's `parallelism` places, held for a running node until it finishes or releases it (the walk
/// keeps it, so dropping the handle early frees nothing).
#[derive(Debug, Clone)]
pub struct Slot(Arc<std::sync::Mutex<Option<OwnedSemaphorePermit>>>);

impl Slot {
    /// Frees the place for another node; this one keeps running (waiting, typically).
    pub fn release(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// `after[a]`: nodes that wait for `a`.
    after: Vec<Vec<usize>>,
    /// `before[b]`: nodes `b` waits for.
    before: Vec<Vec<usize>>,
}

/// The nodes of a cycle, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<usize>);

/// How a node ended in a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<E> {
    Done,
    Failed(E),
    /// Not run because a prerequisite failed; names the failed node it was waiting on.
    Skipped {
        because: usize,
    },
}

impl Graph {
    pub fn new(nodes: usize) -> Graph {
        Graph { after: vec![Vec::new(); nodes], before: vec![Vec::new(); nodes] }
    }

    pub fn len(&self) -> usize {
        self.after.len()
    }

    pub fn is_empty(&self) -> bool {
        self.after.is_empty()
    }

    /// `first` must finish before `then` starts. Duplicate edges are ignored.
    pub fn edge(&mut self, first: usize, then: usize) {
        if !self.after[first].contains(&then) {
            self.after[first].push(then);
            self.before[then].push(first);
        }
    }

    pub fn prerequisites(&self, node: usize) -> &[usize] {
        &self.before[node]
    }

    /// The same nodes with every edge turned around: the order for tearing down what this order built.
    pub fn reversed(&self) -> Graph {
        Graph { after: self.before.clone(), before: self.after.clone() }
    }

    /// A topological order (Kahn's algorithm, ties broken by index so the order is stable), or one cycle.
    pub fn order(&self) -> Result<Vec<usize>, Cycle> {
        let mut waiting: Vec<usize> = self.before.iter().map(Vec::len).collect();
        let mut ready: VecDeque<usize> = (0..self.len()).filter(|&n| waiting[n] == 0).collect();
        let mut out = Vec::with_capacity(self.len());
        while let Some(n) = ready.pop_front() {
            out.push(n);
            let mut next: Vec<usize> = self.after[n].clone();
            next.sort_unstable();
            for m in next {
                waiting[m] -= 1;
                if waiting[m] == 0 {
                    ready.push_back(m);
                }
            }
        }
        if out.len() == self.len() {
            return Ok(out);
        }
        Err(self.find_cycle(&waiting))
    }

    /// Follows unfinished prerequisites from any node left over until a node repeats.
    fn find_cycle(&self, waiting: &[usize]) -> Cycle {
        let start = (0..self.len()).find(|&n| waiting[n] > 0).unwrap_or(0);
        let mut path = vec![start];
        let mut node = start;
        loop {
            let Some(&prev) = self.before[node].iter().find(|&&p| waiting[p] > 0) else {
                return Cycle(path);
            };
            if let Some(pos) = path.iter().position(|&p| p == prev) {
                let mut cycle = path[pos..].to_vec();
                cycle.reverse();
                return Cycle(cycle);
            }
            path.push(prev);
            node = prev;
        }
    }

    /// Runs `run` on every node, each after its prerequisites succeeded, at most `parallelism` at a time.
    /// Each run gets a [`Slot`]: while it holds it, it counts against `parallelism`; a run that goes on to wait
    /// for something slow (AWS bringing a database up) releases it, so waiting never holds up independent work.
    /// The graph must be acyclic (check with [`Graph::order`] first); nodes on a cycle would never run and are
    /// reported as skipped because of themselves.
    pub async fn walk<E, F, Fut>(&self, parallelism: usize, mut run: F) -> Vec<Outcome<E>>
    where
        E: Clone,
        F: FnMut(usize, Slot) -> Fut,
        Fut: Future<Output = (usize, Result<(), E>)>,
    {
        let slots = Arc::new(Semaphore::new(parallelism.max(1)));
        let mut outcome: Vec<Option<Outcome<E>>> = vec![None; self.len()];
        let mut waiting: Vec<usize> = self.before.iter().map(Vec::len).collect();
        let mut ready: VecDeque<usize> = (0..self.len()).filter(|&n| waiting[n] == 0).collect();
        let mut running = FuturesUnordered::new();
        loop {
            while !ready.is_empty()
                && let Ok(permit) = slots.clone().try_acquire_owned()
                && let Some(n) = ready.pop_front()
            {
                let slot = Slot(Arc::new(std::sync::Mutex::new(Some(permit))));
                let work = run(n, slot.clone());
                running.push(async move {
                    let out = work.await;
                    drop(slot);
                    out
                });
            }
            if running.is_empty() {
                break;
            }
            // Wake on a finished run, or on a slot released by a run that is now only waiting.
            let finished = if ready.is_empty() {
                running.next().await
            } else {
                tokio::select! {
                    done = running.next() => done,
                    permit = slots.clone().acquire_owned() => {
                        drop(permit);
                        continue;
                    }
                }
            };
            let Some((n, result)) = finished else { break };
            let failed = result.is_err();
            outcome[n] = Some(match result {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Failed(e),
            });
            if failed {
                self.skip_downstream(n, n, &mut outcome);
            }
            for &m in &self.after[n] {
                waiting[m] -= 1;
                if waiting[m] == 0 && outcome[m].is_none() {
                    ready.push_back(m);
                }
            }
        }
        outcome.into_iter().enumerate().map(|(n, o)| o.unwrap_or(Outcome::Skipped { because: n })).collect()
    }

    fn skip_downstream<E>(&self, from: usize, root: usize, outcome: &mut [Option<Outcome<E>>]) {
        for &m in &self.after[from] {
            if outcome[m].is_none() {
                outcome[m] = Some(Outcome::Skipped { because: root });
                self.skip_downstream(m, root, outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn chain() -> Graph {
        // 0 -> 1 -> 3, 0 -> 2 -> 3, 4 alone
        let mut g = Graph::new(5);
        g.edge(0, 1);
        g.edge(0, 2);
        g.edge(1, 3);
        g.edge(2, 3);
        g
    }

    #[test]
    fn order_respects_every_edge() {
        let g = chain();
        let order = g.order().unwrap();
        let pos = |n| order.iter().position(|&x| x == n).unwrap();
        assert!(pos(0) < pos(1) && pos(0) < pos(2) && pos(1) < pos(3) && pos(2) < pos(3));
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn reversed_order_tears_down_dependents_first() {
        let order = chain().reversed().order().unwrap();
        let pos = |n| order.iter().position(|&x| x == n).unwrap();
        assert!(pos(3) < pos(1) && pos(1) < pos(0) && pos(2) < pos(0));
    }

    #[test]
    fn cycle_is_reported_with_its_members() {
        let mut g = Graph::new(4);
        g.edge(0, 1);
        g.edge(1, 2);
        g.edge(2, 3);
        g.edge(3, 1);
        let Cycle(mut members) = g.order().unwrap_err();
        members.sort();
        assert_eq!(members, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn failure_skips_dependents_but_not_independent_branches() {
        let g = chain();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let outcomes = g
            .walk(2, |n, _slot| {
                let ran = ran.clone();
                async move {
                    ran.lock().unwrap().push(n);
                    (n, if n == 1 { Err(format!("node {n} broke")) } else { Ok(()) })
                }
            })
            .await;
        assert_eq!(outcomes[0], Outcome::Done);
        assert_eq!(outcomes[1], Outcome::Failed("node 1 broke".to_string()));
        assert_eq!(outcomes[2], Outcome::Done);
        assert_eq!(outcomes[3], Outcome::Skipped { because: 1 });
        assert_eq!(outcomes[4], Outcome::Done);
        assert!(!ran.lock().unwrap().contains(&3), "a node downstream of a failure must not run");
    }

    #[tokio::test]
    async fn walk_never_exceeds_parallelism_and_runs_everything() {
        let g = Graph::new(12); // no edges: all ready at once
        let live = Arc::new(Mutex::new((0usize, 0usize))); // (running now, max seen)
        let outcomes = g
            .walk(3, |n, _slot| {
                let live = live.clone();
                async move {
                    {
                        let mut l = live.lock().unwrap();
                        l.0 += 1;
                        l.1 = l.1.max(l.0);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    live.lock().unwrap().0 -= 1;
                    (n, Ok::<(), String>(()))
                }
            })
            .await;
        assert!(outcomes.iter().all(|o| *o == Outcome::Done));
        let max = live.lock().unwrap().1;
        assert!((2..=3).contains(&max), "max concurrency was {max}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_releases_its_slot_does_not_hold_up_others() {
        // One slot. Node 0 waits 30 minutes (virtual time) after releasing its slot; nodes 1-3 are quick. They all
        // finish long before node 0 does.
        let g = Graph::new(4);
        let finished = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        g.walk(1, |n, mut slot| {
            let finished = finished.clone();
            async move {
                if n == 0 {
                    slot.release();
                    tokio::time::sleep(std::time::Duration::from_secs(30 * 60)).await;
                } else {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                finished.lock().unwrap().push((n, start.elapsed().as_secs()));
                (n, Ok::<(), String>(()))
            }
        })
        .await;
        let finished = finished.lock().unwrap().clone();
        assert_eq!(finished.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 2, 3, 0]);
        assert!(finished[2].1 <= 3, "the quick nodes ran one at a time, not after the wait: {finished:?}");
        assert_eq!(finished[3].1, 30 * 60);
    }
}
