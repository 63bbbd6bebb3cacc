//! The transaction graph: dependency, process and real-time edges in compressed rows,
//! strongly connected components (Tarjan, iterative) and the shortest path search the
//! cycle finder uses.

use super::history::{History, Outcome};
use super::infer::{PROCESS, REALTIME, RW};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

pub struct Graph {
    /// `offsets[t]..offsets[t+1]` index `targets`/`rels` for txn t's out-edges.
    offsets: Vec<u32>,
    targets: Vec<u32>,
    rels: Vec<u8>,
}

impl Graph {
    /// Builds the graph from edge triples, merging the relations of parallel edges.
    pub fn new(n: usize, edges: &[(u32, u32, u8)]) -> Graph {
        Graph::with_realtime(n, edges, &Realtime::default())
    }

    /// Builds the graph from edge triples plus real-time predecessors (kept apart because
    /// they are most of the edges, and 4 bytes each there instead of 12).
    pub fn with_realtime(n: usize, edges: &[(u32, u32, u8)], rt: &Realtime) -> Graph {
        let mut counts = vec![0u32; n + 1];
        for &(a, _, _) in edges {
            counts[a as usize + 1] += 1;
        }
        for &p in &rt.preds {
            counts[p as usize + 1] += 1;
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let total = counts[n] as usize;
        let mut fill = counts.clone();
        let mut targets = vec![0u32; total];
        let mut rels = vec![0u8; total];
        let mut put = |a: u32, b: u32, r: u8| {
            let at = fill[a as usize] as usize;
            targets[at] = b;
            rels[at] = r;
            fill[a as usize] += 1;
        };
        for &(a, b, r) in edges {
            put(a, b, r);
        }
        for (t, w) in rt.starts.windows(2).enumerate() {
            for &p in &rt.preds[w[0] as usize..w[1] as usize] {
                put(p, t as u32, REALTIME);
            }
        }
        drop(fill);
        // Merge parallel edges within each row, compacting in place: the first half of the
        // rows on this thread, the second on another (each within its own part of the
        // arrays), then the second's rows moved to follow the first's.
        let mid = if n >= PARALLEL_ROWS_MIN { n / 2 } else { n };
        let split = counts[mid] as usize;
        let (ends_a, ends_b) = {
            let (ta, tb) = targets.split_at_mut(split);
            let (ra, rb) = rels.split_at_mut(split);
            std::thread::scope(|s| {
                let b = (mid < n).then(|| s.spawn(|| merge_rows(tb, rb, &counts[mid..])));
                let a = merge_rows(ta, ra, &counts[..=mid]);
                let b = b.map_or_else(Vec::new, |b| {
                    b.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
                });
                (a, b)
            })
        };
        let out_a = ends_a.last().copied().unwrap_or(0) as usize;
        let out_b = ends_b.last().copied().unwrap_or(0) as usize;
        targets.copy_within(split..split + out_b, out_a);
        rels.copy_within(split..split + out_b, out_a);
        let out = out_a + out_b;
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0u32);
        offsets.extend_from_slice(&ends_a);
        offsets.extend(ends_b.iter().map(|e| e + out_a as u32));
        debug_assert_eq!(offsets.len(), n + 1);
        targets.truncate(out);
        rels.truncate(out);
        targets.shrink_to_fit();
        rels.shrink_to_fit();
        Graph {
            offsets,
            targets,
            rels,
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }

    pub fn out(&self, t: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        let (a, b) = (
            self.offsets[t as usize] as usize,
            self.offsets[t as usize + 1] as usize,
        );
        self.targets[a..b]
            .iter()
            .copied()
            .zip(self.rels[a..b].iter().copied())
    }

    /// The relations on the edge a → b (0: none).
    pub fn rel(&self, a: u32, b: u32) -> u8 {
        let (lo, hi) = (
            self.offsets[a as usize] as usize,
            self.offsets[a as usize + 1] as usize,
        );
        match self.targets[lo..hi].binary_search(&b) {
            Ok(i) => self.rels[lo + i],
            Err(_) => 0,
        }
    }

    /// Strongly connected components of more than one txn, over edges whose relations
    /// meet `mask`. Returns each txn's component (u32::MAX: none) and the components.
    pub fn sccs(&self, mask: u8) -> (Vec<u32>, Vec<Vec<u32>>) {
        let n = self.len();
        const NONE: u32 = u32::MAX;
        let mut index = vec![NONE; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut comp = vec![NONE; n];
        let mut comps: Vec<Vec<u32>> = Vec::new();
        let mut next = 0u32;
        // (node, position in its row)
        let mut call: Vec<(u32, u32)> = Vec::new();
        for root in 0..n as u32 {
            if index[root as usize] != NONE
                || self.offsets[root as usize] == self.offsets[root as usize + 1]
            {
                continue;
            }
            call.push((root, self.offsets[root as usize]));
            index[root as usize] = next;
            low[root as usize] = next;
            next += 1;
            stack.push(root);
            on_stack[root as usize] = true;
            while let Some(&mut (v, ref mut pos)) = call.last_mut() {
                let end = self.offsets[v as usize + 1];
                let mut descended = false;
                while *pos < end {
                    let i = *pos as usize;
                    *pos += 1;
                    if self.rels[i] & mask == 0 {
                        continue;
                    }
                    let w = self.targets[i];
                    if index[w as usize] == NONE {
                        index[w as usize] = next;
                        low[w as usize] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w as usize] = true;
                        call.push((w, self.offsets[w as usize]));
                        descended = true;
                        break;
                    } else if on_stack[w as usize] {
                        low[v as usize] = low[v as usize].min(index[w as usize]);
                    }
                }
                if descended {
                    continue;
                }
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent as usize] = low[parent as usize].min(low[v as usize]);
                }
                if low[v as usize] == index[v as usize] {
                    let mut members = Vec::new();
                    loop {
                        let w = stack.pop().expect("Tarjan stack holds v");
                        on_stack[w as usize] = false;
                        members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if members.len() > 1 {
                        let id = comps.len() as u32;
                        for &m in &members {
                            comp[m as usize] = id;
                        }
                        comps.push(members);
                    }
                }
            }
        }
        (comp, comps)
    }
}

/// Below this many txns the rows are merged on one thread.
const PARALLEL_ROWS_MIN: usize = 1 << 14;

/// Sorts each row of `targets` / `rels` (row r at `counts[r] - counts[0]` up to
/// `counts[r + 1] - counts[0]`) by target and merges the relations of parallel edges,
/// compacting the rows to the front; returns where each row now ends.
fn merge_rows(targets: &mut [u32], rels: &mut [u8], counts: &[u32]) -> Vec<u32> {
    let base = counts[0] as usize;
    let mut ends = Vec::with_capacity(counts.len().saturating_sub(1));
    let mut out = 0usize;
    let mut row: Vec<(u32, u8)> = Vec::new();
    for w in counts.windows(2) {
        row.clear();
        for i in w[0] as usize - base..w[1] as usize - base {
            row.push((targets[i], rels[i]));
        }
        row.sort_unstable_by_key(|e| e.0);
        let start = out;
        for &(b, r) in row.iter() {
            if out > start && targets[out - 1] == b {
                rels[out - 1] |= r;
            } else {
                targets[out] = b;
                rels[out] = r;
                out += 1;
            }
        }
        ends.push(out as u32);
    }
    ends
}

/// A path found by [`shortest_path`]: the txns from `from` to `to` and the relation
/// chosen for each step.
pub type Path = Vec<(u32, u8)>;

/// Shortest path from `from` to `to` inside component `scc`, over relations in `allowed`,
/// using at least one edge of each group in `need` (at most two groups). `nonadjacent`:
/// the path closes a cycle whose other edge (into `from`, out of `to`) is rw, and no two rw
/// edges may be adjacent. Each step's chosen relation is returned with the txn it reaches.
/// `budget` counts states visited; the search gives up (`None`) when it runs out.
#[allow(clippy::too_many_arguments)]
pub fn shortest_path(
    g: &Graph,
    comp: &[u32],
    scc: u32,
    from: u32,
    to: u32,
    allowed: u8,
    need: &[u8],
    nonadjacent: bool,
    budget: &mut u64,
) -> Option<Path> {
    debug_assert!(need.len() <= 2);
    let full: u8 = (1 << need.len()) - 1;
    let flags_of = |rel: u8| -> u8 {
        need.iter()
            .enumerate()
            .filter(|(_, m)| *m & rel != 0)
            .fold(0, |acc, (i, _)| acc | (1 << i))
    };
    // state → (previous state, relation taken)
    let mut parent: FxHashMap<(u32, u8), ((u32, u8), u8)> = FxHashMap::default();
    let mut queue = VecDeque::new();
    // Bit 7 of the flags: the last edge taken was rw (the cycle's first edge is).
    const LAST_RW: u8 = 0x80;
    let start = (from, if nonadjacent { LAST_RW } else { 0u8 });
    parent.insert(start, (start, 0));
    queue.push_back(start);
    let mut goal = None;
    'search: while let Some((v, fl)) = queue.pop_front() {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        for (w, rels) in g.out(v) {
            if comp[w as usize] != scc {
                continue;
            }
            let usable = rels & allowed;
            if usable == 0 {
                continue;
            }
            // Each relation on the edge may be taken; prefer those that satisfy a need.
            let mut bit = 1u8;
            while bit != 0 && bit <= REALTIME {
                let blocked = nonadjacent && bit == RW && fl & LAST_RW != 0;
                if usable & bit != 0 && !blocked {
                    let mut nf = (fl & !LAST_RW) | flags_of(bit);
                    if nonadjacent && bit == RW {
                        nf |= LAST_RW;
                    }
                    let s = (w, nf);
                    if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(s) {
                        e.insert(((v, fl), bit));
                        if w == to && nf & !LAST_RW == full && nf & LAST_RW == 0 {
                            goal = Some(s);
                            break 'search;
                        }
                        queue.push_back(s);
                    }
                }
                bit <<= 1;
            }
        }
    }
    let mut s = goal?;
    let mut path = Vec::new();
    while s != start {
        let (prev, rel) = parent[&s];
        path.push((s.0, rel));
        s = prev;
    }
    path.reverse();
    Some(path)
}

/// Process edges: each process's committed txns in invoke order.
pub fn process_edges(h: &History, committed: &[bool], out: &mut Vec<(u32, u32, u8)>) {
    let mut last: FxHashMap<u64, u32> = FxHashMap::default();
    for (t, txn) in h.txns.iter().enumerate() {
        if !committed[t] {
            continue;
        }
        if let Some(prev) = last.insert(txn.process, t as u32) {
            out.push((prev, t as u32, PROCESS));
        }
    }
}

/// Real-time predecessors of each txn: `preds[starts[t]..starts[t+1]]`.
#[derive(Debug, Default)]
pub struct Realtime {
    pub starts: Vec<u32>,
    pub preds: Vec<u32>,
}

/// Real-time edges, transitively reduced as far as a sweep can: T1 → T2 when T1 completed
/// before T2 was invoked and no txn lies between them in real time.
pub fn realtime_edges(h: &History, committed: &[bool]) -> Realtime {
    // Txns completed whose successors are not yet covered by a later completion.
    let mut frontier: Vec<u32> = Vec::new();
    // Per running txn: where its predecessors start in `preds`, and how many.
    let mut running: FxHashMap<u32, (u32, u32)> = FxHashMap::default();
    let n = h.txns.len();
    let mut by_txn: Vec<(u32, u32)> = vec![(0, 0); n];
    let mut preds: Vec<u32> = Vec::with_capacity(n * 4);
    for &(t, completion) in &h.events {
        if !committed[t as usize] {
            continue;
        }
        if !completion {
            let at = preds.len() as u32;
            preds.extend_from_slice(&frontier);
            by_txn[t as usize] = (at, frontier.len() as u32);
            running.insert(t, (at, frontier.len() as u32));
        } else if let Some((at, len)) = running.remove(&t) {
            if h.txns[t as usize].outcome == Outcome::Ok {
                let before = &preds[at as usize..(at + len) as usize];
                frontier.retain(|f| !before.contains(f));
                frontier.push(t);
            }
        }
    }
    // Preds were written in invoke order, which is txn order: offsets are monotone.
    let mut starts = Vec::with_capacity(n + 1);
    let mut end = 0u32;
    for &(at, len) in &by_txn {
        starts.push(if len == 0 { end } else { at });
        if len > 0 {
            end = at + len;
        }
    }
    starts.push(preds.len() as u32);
    Realtime { starts, preds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_merged_on_two_threads_are_the_rows_merged_one_by_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for n in [
            PARALLEL_ROWS_MIN - 1,
            PARALLEL_ROWS_MIN + 1,
            3 * PARALLEL_ROWS_MIN,
        ] {
            let edges: Vec<(u32, u32, u8)> = (0..4 * n)
                .map(|_| {
                    // Few distinct targets per row, so parallel edges are common.
                    let a = rng.random_range(0..n as u32);
                    let b = (a + rng.random_range(1..6)) % n as u32;
                    (a, b, 1 << rng.random_range(0..5))
                })
                .collect();
            let rt = Realtime {
                starts: (0..=n as u32).map(|t| t.saturating_sub(1)).collect(),
                preds: (0..n as u32 - 1).collect(),
            };
            let g = Graph::with_realtime(n, &edges, &rt);
            let mut want: std::collections::BTreeMap<(u32, u32), u8> = Default::default();
            for &(a, b, r) in &edges {
                *want.entry((a, b)).or_default() |= r;
            }
            for t in 1..n as u32 {
                *want.entry((t - 1, t)).or_default() |= REALTIME;
            }
            let got: Vec<((u32, u32), u8)> = (0..n as u32)
                .flat_map(|a| g.out(a).map(move |(b, r)| ((a, b), r)))
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn sccs_and_paths() {
        // 0 → 1 → 2 → 0 (a cycle), 2 → 3, 3 → 4 → 3 (another).
        let edges = [
            (0, 1, 1),
            (1, 2, 2),
            (2, 0, 4),
            (2, 3, 1),
            (3, 4, 1),
            (4, 3, 1),
            (0, 1, 2),
        ];
        let g = Graph::new(5, &edges);
        assert_eq!(g.rel(0, 1), 3);
        let (comp, comps) = g.sccs(0xff);
        assert_eq!(comps.len(), 2);
        assert_eq!(comp[0], comp[2]);
        assert_ne!(comp[0], comp[3]);
        let (_, ww_only) = g.sccs(1);
        assert_eq!(ww_only.len(), 1);
        let mut budget = 1000;
        let p = shortest_path(&g, &comp, comp[0], 0, 2, 0xff, &[2], false, &mut budget).unwrap();
        assert_eq!(p, vec![(1, 1), (2, 2)]);
        assert!(shortest_path(&g, &comp, comp[0], 0, 2, 1, &[], false, &mut budget).is_none());
    }
}
