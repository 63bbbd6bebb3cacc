//! From transactions to facts: who wrote each value, each key's version order (list-append:
//! its longest read; rw-register: explicit versions, else the initial nil and each
//! transaction's read-then-write), the anomalies visible without a cycle, and the ww / wr /
//! rw dependency edges between transactions.

use super::history::{History, ListRead, Mop, Outcome, Val};
use rustc_hash::FxHashMap;

/// Edge relations, as bits: an edge between two txns may hold several.
pub const WW: u8 = 1;
pub const WR: u8 = 2;
pub const RW: u8 = 4;
pub const PROCESS: u8 = 8;
pub const REALTIME: u8 = 16;

pub fn rel_name(bit: u8) -> &'static str {
    match bit {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        PROCESS => "process",
        _ => "realtime",
    }
}

/// An anomaly found without a cycle: the txns involved and why.
#[derive(Debug, Clone)]
pub struct Case {
    pub kind: &'static str,
    pub txns: Vec<u32>,
    pub key: Option<u32>,
    pub explanation: String,
}

/// Who wrote a value: the txn, and whether it was that txn's last write to the key.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    pub txn: u32,
    pub last: bool,
}

/// A register key's version order edges `a → b` (a: `None` is the initial nil).
pub type RegOrder = FxHashMap<(u32, Option<Val>), Vec<Val>>;

pub struct Facts {
    pub writers: Writers,
    /// For each list key: the txn whose read is the key's longest list.
    pub longest_reader: Vec<Option<u32>>,
    pub reg_next: RegOrder,
    pub cases: Vec<Case>,
    /// (from, to, relation) dependency edges; may hold duplicates.
    pub edges: Vec<(u32, u32, u8)>,
    /// Txns that are nodes of the graph: ok, or info with an observed write.
    pub committed: Vec<bool>,
}

fn list_text(h: &History, vals: &[Val]) -> String {
    const SHOWN: usize = 4;
    let shown: Vec<String> = vals
        .iter()
        .skip(vals.len().saturating_sub(SHOWN))
        .map(|v| h.val_text(*v))
        .collect();
    if vals.len() > SHOWN {
        format!("[.. {}]", shown.join(" "))
    } else {
        format!("[{}]", shown.join(" "))
    }
}

pub fn describe_list(h: &History, vals: &[Val]) -> String {
    list_text(h, vals)
}

/// A scoped thread's result; its panic goes on as this thread's.
fn join<T>(t: std::thread::ScopedJoinHandle<'_, T>) -> T {
    t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

pub fn infer(h: &History) -> Facts {
    let n = h.txns.len();
    // Three threads: the checks of each txn against itself, lost updates and the register
    // orders on one; the list keys' writers on this one, then their checks on another
    // while this one draws their edges. Each keeps its findings apart and they are joined
    // in the order one thread would have found them, so the result does not depend on
    // which finishes first.
    let mut f = std::thread::scope(|s| {
        let other = s.spawn(|| {
            let (mut internal, mut lost) = (Vec::new(), Vec::new());
            internal_cases(h, &mut internal);
            lost_updates(h, &mut lost);
            let mut reg_next = RegOrder::default();
            register_order(h, &mut reg_next);
            (internal, lost, reg_next)
        });
        let writers = Writers::new(h);
        let mut committed: Vec<bool> = h.txns.iter().map(|t| t.outcome == Outcome::Ok).collect();
        let ((longest_reader, mut cases), edges) = std::thread::scope(|s2| {
            let checks = s2.spawn(|| {
                let mut longest_reader = vec![None; h.keys.len()];
                let mut cases = Vec::new();
                list_cases(h, &writers, &mut longest_reader, &mut cases);
                (longest_reader, cases)
            });
            let edges = list_edges(h, &writers.list, &mut committed);
            (join(checks), edges)
        });
        let (internal, lost, reg_next) = join(other);
        cases.extend(internal);
        cases.extend(lost);
        Facts {
            writers,
            longest_reader,
            reg_next,
            cases,
            edges,
            committed,
        }
    });
    register_edges(h, &mut f);
    debug_assert_eq!(f.committed.len(), n);
    f
}

/// Who wrote each value: for list keys by position in the key's longest list (what the
/// list checks and edges ask of each element and each prefix read, one index each), and a
/// map only for the rest (register writes, appends no read saw) — one map entry per write
/// was most of `infer`'s time and a good part of the peak memory.
pub struct Writers {
    list: ListWriters,
    other: FxHashMap<(u32, Val), Writer>,
}

impl Writers {
    fn new(h: &History) -> Writers {
        let mut list = ListWriters::new(h);
        let mut other = FxHashMap::default();
        for (t, _) in h.txns.iter().enumerate() {
            let mops = h.mops_of(t as u32);
            for (i, m) in mops.iter().enumerate() {
                let (key, val) = match *m {
                    Mop::Append { key, val } => (key, val),
                    Mop::Write { key, val } => (key, val),
                    _ => continue,
                };
                let last = !mops[i + 1..].iter().any(|m| {
                    matches!(*m, Mop::Append { key: k, .. } | Mop::Write { key: k, .. } if k == key)
                });
                // A later write of the same value wins, as it did in one map.
                match h.orders[key as usize].position(val) {
                    Some(pos) => {
                        let at = list.starts[key as usize] + pos as usize;
                        list.txn[at] = t as u32;
                        list.last[at] = last;
                    }
                    None => {
                        other.insert(
                            (key, val),
                            Writer {
                                txn: t as u32,
                                last,
                            },
                        );
                    }
                }
            }
        }
        // A value read twice in the longest list has one writer at both positions.
        for (k, order) in h.orders.iter().enumerate() {
            let base = list.starts[k];
            for &(v, pos) in &order.duplicates {
                if let Some(first) = order.position(v) {
                    list.txn[base + pos as usize] = list.txn[base + first as usize];
                    list.last[base + pos as usize] = list.last[base + first as usize];
                }
            }
        }
        Writers { list, other }
    }

    /// Who wrote `val` to `key`.
    pub fn get(&self, h: &History, key: u32, val: Val) -> Option<Writer> {
        match h.orders[key as usize].position(val) {
            Some(pos) => self.list.get(key, pos as usize),
            None => self.other.get(&(key, val)).copied(),
        }
    }
}

/// The writer of each element of every list key's longest list, by position.
struct ListWriters {
    /// Key k's elements are at `starts[k]..starts[k + 1]`.
    starts: Vec<usize>,
    /// The element's writer txn, `NO_WRITER` when none.
    txn: Vec<u32>,
    /// Whether it was that txn's last write to the key.
    last: Vec<bool>,
}

const NO_WRITER: u32 = u32::MAX;

impl ListWriters {
    fn new(h: &History) -> ListWriters {
        let mut starts = Vec::with_capacity(h.orders.len() + 1);
        let mut total = 0;
        for o in &h.orders {
            starts.push(total);
            total += o.elems.len();
        }
        starts.push(total);
        ListWriters {
            starts,
            txn: vec![NO_WRITER; total],
            last: vec![false; total],
        }
    }

    /// The writer of key's element at `pos`.
    fn get(&self, key: u32, pos: usize) -> Option<Writer> {
        let i = self.starts[key as usize] + pos;
        (self.txn[i] != NO_WRITER).then(|| Writer {
            txn: self.txn[i],
            last: self.last[i],
        })
    }

    /// [`committed_writer`] of key's element at `pos`.
    fn committed(&self, h: &History, key: u32, pos: usize) -> Option<u32> {
        let w = self.get(key, pos)?;
        (h.txns[w.txn as usize].outcome != Outcome::Fail).then_some(w.txn)
    }
}

/// Duplicates, garbage, aborted (G1a) and intermediate (G1b) reads, and reads that are not
/// prefixes of the key's longest read (incompatible-order), for list keys.
fn list_cases(
    h: &History,
    writers: &Writers,
    longest_reader: &mut [Option<u32>],
    cases: &mut Vec<Case>,
) {
    let lw = &writers.list;
    // Which txn's read fixed each key's longest list.
    for (t, _) in h.txns.iter().enumerate() {
        for m in h.mops_of(t as u32) {
            if let Mop::ReadList {
                key,
                seen: Some(ListRead::Prefix(len)),
            } = *m
            {
                if len as usize == h.orders[key as usize].elems.len() && len > 0 {
                    longest_reader[key as usize].get_or_insert(t as u32);
                }
            }
        }
    }
    // Per key: the first position holding garbage or a failed txn's append.
    let mut first_bad: Vec<(u32, u32)> = vec![(u32::MAX, u32::MAX); h.keys.len()];
    for (k, order) in h.orders.iter().enumerate() {
        let key = k as u32;
        for &(v, pos) in &order.duplicates {
            cases.push(Case {
                kind: "duplicate-elements",
                txns: longest_reader[k].into_iter().collect(),
                key: Some(key),
                explanation: format!(
                    "key {} was read with {} twice (again at position {pos}); each value is appended once",
                    h.key(key),
                    h.val_text(v)
                ),
            });
        }
        for pos in 0..order.elems.len() {
            match lw.get(key, pos) {
                None if first_bad[k].0 == u32::MAX => first_bad[k].0 = pos as u32,
                Some(w)
                    if h.txns[w.txn as usize].outcome == Outcome::Fail
                        && first_bad[k].1 == u32::MAX =>
                {
                    first_bad[k].1 = pos as u32;
                }
                _ => {}
            }
        }
    }
    for &(odd, v) in &h.odd_duplicates {
        let (t, key, _) = &h.odd_reads[odd as usize];
        cases.push(Case {
            kind: "duplicate-elements",
            txns: vec![*t],
            key: Some(*key),
            explanation: format!(
                "T{t} read key {} with {} twice; each value is appended once",
                h.key(*key),
                h.val_text(v)
            ),
        });
    }
    for (t, _) in h.txns.iter().enumerate() {
        let t = t as u32;
        for m in h.mops_of(t) {
            let Mop::ReadList {
                key,
                seen: Some(read),
            } = *m
            else {
                continue;
            };
            let vals = h.list_read(key, read);
            let k = key as usize;
            let (garbage_at, failed_at) = match read {
                ListRead::Prefix(len) => (
                    (first_bad[k].0 < len).then_some(first_bad[k].0 as usize),
                    (first_bad[k].1 < len).then_some(first_bad[k].1 as usize),
                ),
                ListRead::Odd(_) => (
                    vals.iter().position(|v| writers.get(h, key, *v).is_none()),
                    vals.iter().position(|v| {
                        writers
                            .get(h, key, *v)
                            .is_some_and(|w| h.txns[w.txn as usize].outcome == Outcome::Fail)
                    }),
                ),
            };
            if let ListRead::Odd(_) = read {
                let longest = &h.orders[k].elems;
                let common = longest.iter().zip(vals).take_while(|(a, b)| a == b).count();
                cases.push(Case {
                    kind: "incompatible-order",
                    txns: std::iter::once(t).chain(longest_reader[k]).collect(),
                    key: Some(key),
                    explanation: format!(
                        "T{t} read key {} as {}, which is not a prefix of the longest read {}{}: they agree on {common} element(s), then differ, so no single order of appends explains both",
                        h.key(key),
                        list_text(h, vals),
                        list_text(h, longest),
                        longest_reader[k].map(|r| format!(" (by T{r})")).unwrap_or_default()
                    ),
                });
            }
            if let Some(pos) = garbage_at {
                cases.push(Case {
                    kind: "garbage-read",
                    txns: vec![t],
                    key: Some(key),
                    explanation: format!(
                        "T{t} read key {} as {}, holding {}, which no transaction appended",
                        h.key(key),
                        list_text(h, vals),
                        h.val_text(vals[pos])
                    ),
                });
            }
            if let Some(pos) = failed_at {
                let Some(w) = writers.get(h, key, vals[pos]) else {
                    continue;
                };
                let w = w.txn;
                cases.push(Case {
                    kind: "G1a",
                    txns: vec![w, t],
                    key: Some(key),
                    explanation: format!(
                        "T{t} read key {} as {}, holding {}, appended by T{w}, which failed (aborted read)",
                        h.key(key),
                        list_text(h, vals),
                        h.val_text(vals[pos])
                    ),
                });
            }
            if let Some(&last) = vals.last() {
                let writer = match read {
                    ListRead::Prefix(len) => lw.get(key, len as usize - 1),
                    ListRead::Odd(_) => writers.get(h, key, last),
                };
                if let Some(w) = writer {
                    if w.txn != t && !w.last {
                        cases.push(Case {
                            kind: "G1b",
                            txns: vec![w.txn, t],
                            key: Some(key),
                            explanation: format!(
                                "T{t} read key {} as {}, ending at {}, which T{} appended but then appended to key {} again (intermediate read)",
                                h.key(key),
                                list_text(h, vals),
                                h.val_text(last),
                                w.txn,
                                h.key(key)
                            ),
                        });
                    }
                }
            }
        }
    }
}

/// Reads that disagree with the transaction's own earlier reads and writes.
fn internal_cases(h: &History, cases: &mut Vec<Case>) {
    enum Known {
        /// The whole list (from an earlier read plus own appends since).
        List(Vec<Val>),
        /// Only own appends (they must end the list).
        Suffix(Vec<Val>),
        Reg(Option<Val>),
    }
    let mut state: FxHashMap<u32, Known> = FxHashMap::default();
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        let t = t as u32;
        let mops = h.mops_of(t);
        if mops.len() < 2 {
            continue;
        }
        state.clear();
        for m in mops {
            match *m {
                Mop::Append { key, val } => match state.entry(key).or_insert(Known::Suffix(vec![]))
                {
                    Known::List(l) | Known::Suffix(l) => l.push(val),
                    Known::Reg(_) => {}
                },
                Mop::ReadList {
                    key,
                    seen: Some(read),
                } => {
                    let vals = h.list_read(key, read);
                    let bad = match state.get(&key) {
                        Some(Known::List(l)) => (l.as_slice() != vals).then(|| list_text(h, l)),
                        Some(Known::Suffix(s)) => (!vals.ends_with(s))
                            .then(|| format!("a list ending in {}", list_text(h, s))),
                        _ => None,
                    };
                    if let Some(expected) = bad {
                        cases.push(Case {
                            kind: "internal",
                            txns: vec![t],
                            key: Some(key),
                            explanation: format!(
                                "T{t} read key {} as {} but its own earlier reads and appends say {expected}",
                                h.key(key),
                                list_text(h, vals)
                            ),
                        });
                    }
                    state.insert(key, Known::List(vals.to_vec()));
                }
                Mop::Write { key, val } => {
                    state.insert(key, Known::Reg(Some(val)));
                }
                Mop::ReadReg {
                    key,
                    val,
                    known: true,
                    ..
                } => {
                    if let Some(Known::Reg(prev)) = state.get(&key) {
                        if *prev != val {
                            let show = |v: Option<Val>| v.map_or("nil".into(), |v| h.val_text(v));
                            cases.push(Case {
                                kind: "internal",
                                txns: vec![t],
                                key: Some(key),
                                explanation: format!(
                                    "T{t} read key {} = {} but its own earlier read or write says {}",
                                    h.key(key),
                                    show(val),
                                    show(*prev)
                                ),
                            });
                        }
                    }
                    state.insert(key, Known::Reg(val));
                }
                _ => {}
            }
        }
    }
}

/// Two committed txns that read the same version of a key and both wrote it.
fn lost_updates(h: &History, cases: &mut Vec<Case>) {
    // (key, version read) → first txn that read it then wrote the key.
    let mut first: FxHashMap<(u32, i64), u32> = FxHashMap::default();
    let mut reported: FxHashMap<(u32, i64), usize> = FxHashMap::default();
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        let t = t as u32;
        let mops = h.mops_of(t);
        for (i, m) in mops.iter().enumerate() {
            let (key, version) = match *m {
                Mop::ReadList {
                    key,
                    seen: Some(ListRead::Prefix(len)),
                } => (key, len as i64),
                Mop::ReadReg {
                    key,
                    val,
                    known: true,
                    ..
                } => (key, val.unwrap_or(i64::MIN)),
                _ => continue,
            };
            // The version read, in words (only for a report: most reads are not one).
            let shown = || match *m {
                Mop::ReadList {
                    key,
                    seen: Some(read),
                } => list_text(h, h.list_read(key, read)),
                Mop::ReadReg { val, .. } => val.map_or("nil".into(), |v| h.val_text(v)),
                _ => String::new(),
            };
            let writes_after = mops[i + 1..].iter().any(|m| {
                matches!(*m, Mop::Append { key: k, .. } | Mop::Write { key: k, .. } if k == key)
            });
            if !writes_after {
                continue;
            }
            match first.get(&(key, version)) {
                None => {
                    first.insert((key, version), t);
                }
                Some(&other) if other != t => {
                    if let Some(&c) = reported.get(&(key, version)) {
                        cases[c].txns.push(t);
                    } else {
                        reported.insert((key, version), cases.len());
                        cases.push(Case {
                            kind: "lost-update",
                            txns: vec![other, t],
                            key: Some(key),
                            explanation: format!(
                                "T{other} and T{t} both read key {} as {} and then both wrote key {}: one update was made without seeing the other",
                                h.key(key),
                                shown(),
                                h.key(key)
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// Version order edges of register keys.
fn register_order(h: &History, reg_next: &mut RegOrder) {
    let mut versions: FxHashMap<u32, Vec<(i64, Val)>> = FxHashMap::default();
    let mut reg_writes: Vec<(u32, Val)> = Vec::new();
    let mut unversioned: rustc_hash::FxHashSet<u32> = Default::default();
    for (t, txn) in h.txns.iter().enumerate() {
        let mops = h.mops_of(t as u32);
        let mut last: FxHashMap<u32, Option<Val>> = FxHashMap::default();
        for (i, m) in mops.iter().enumerate() {
            let version = h.versions.get(&(txn.mops_start + i as u32)).copied();
            match *m {
                Mop::Write { key, val } => {
                    reg_writes.push((key, val));
                    match version {
                        Some(v) => versions.entry(key).or_default().push((v, val)),
                        None => {
                            unversioned.insert(key);
                        }
                    }
                    // What this txn saw or wrote last precedes this write.
                    if let Some(prev) = last.get(&key) {
                        if *prev != Some(val) {
                            reg_next.entry((key, *prev)).or_default().push(val);
                        }
                    }
                    last.insert(key, Some(val));
                }
                Mop::ReadReg {
                    key,
                    val,
                    known: true,
                } => {
                    if let (Some(v), Some(val)) = (version, val) {
                        versions.entry(key).or_default().push((v, val));
                    }
                    last.insert(key, val);
                }
                _ => {}
            }
        }
    }
    // Keys whose every write carries a version: the versions order them totally.
    for (key, mut vs) in versions {
        if unversioned.contains(&key) {
            continue;
        }
        vs.sort_unstable();
        vs.dedup();
        reg_next.retain(|(k, _), _| *k != key);
        let mut prev = None;
        for (_, v) in vs {
            if prev == Some(v) {
                continue;
            }
            reg_next.entry((key, prev)).or_default().push(v);
            prev = Some(v);
        }
    }
    // A written value no txn is known to have overwritten-from follows the initial nil.
    let mut has_pred: rustc_hash::FxHashSet<(u32, Val)> = Default::default();
    for ((k, _), nexts) in reg_next.iter() {
        for v in nexts {
            has_pred.insert((*k, *v));
        }
    }
    let mut roots: Vec<(u32, Val)> = reg_writes
        .into_iter()
        .filter(|kv| !has_pred.contains(kv))
        .collect();
    roots.sort_unstable();
    roots.dedup();
    for (key, val) in roots {
        reg_next.entry((key, None)).or_default().push(val);
    }
    for v in reg_next.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
}

fn committed_writer(h: &History, f: &Facts, key: u32, val: Val) -> Option<u32> {
    let w = f.writers.get(h, key, val)?;
    (h.txns[w.txn as usize].outcome != Outcome::Fail).then_some(w.txn)
}

fn list_edges(h: &History, lw: &ListWriters, committed: &mut [bool]) -> Vec<(u32, u32, u8)> {
    let mut edges = Vec::with_capacity(h.txns.len() * 3);
    let mut observed_info: Vec<u32> = Vec::new();
    for (k, order) in h.orders.iter().enumerate() {
        let key = k as u32;
        let mut prev: Option<u32> = None;
        // Positions whose element appeared earlier in the list (rare).
        let again: rustc_hash::FxHashSet<u32> = order.duplicates.iter().map(|d| d.1).collect();
        for pos in 0..order.elems.len() {
            // A duplicated element orders nothing new (Elle takes the distinct elements).
            if again.contains(&(pos as u32)) {
                continue;
            }
            let w = lw.committed(h, key, pos);
            if let Some(w) = w {
                if h.txns[w as usize].outcome == Outcome::Info {
                    observed_info.push(w);
                }
            }
            if let (Some(a), Some(b)) = (prev, w) {
                if a != b {
                    edges.push((a, b, WW));
                }
            }
            if w.is_some() {
                prev = w;
            }
        }
    }
    // Per key: txns whose read is the whole longest list, and committed appends no read
    // observed. Those appends came after the longest list (lists only grow), so they
    // follow its last writer (ww) and its readers (rw), as Elle infers.
    let mut full_readers: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    let mut unobserved: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for (t, txn) in h.txns.iter().enumerate() {
        let t = t as u32;
        for m in h.mops_of(t) {
            if let Mop::Append { key, val } = *m {
                if txn.outcome != Outcome::Fail && !h.orders[key as usize].contains(val) {
                    unobserved.entry(key).or_default().push(t);
                }
            }
            let Mop::ReadList {
                key,
                seen: Some(ListRead::Prefix(len)),
            } = *m
            else {
                continue;
            };
            let elems = &h.orders[key as usize].elems;
            if len as usize == elems.len() {
                full_readers.entry(key).or_default().push(t);
            }
            if len > 0 {
                if let Some(w) = lw.committed(h, key, len as usize - 1) {
                    if w != t {
                        edges.push((w, t, WR));
                    }
                }
            }
            if (len as usize) < elems.len() {
                if let Some(w) = lw.committed(h, key, len as usize) {
                    if w != t {
                        edges.push((t, w, RW));
                    }
                }
            }
        }
    }
    for (key, appenders) in unobserved.iter_mut() {
        appenders.dedup();
        let elems = &h.orders[*key as usize].elems;
        let last = elems
            .len()
            .checked_sub(1)
            .and_then(|pos| lw.committed(h, *key, pos));
        let readers = full_readers.get(key).map(Vec::as_slice).unwrap_or(&[]);
        for &u in appenders.iter() {
            if let Some(w) = last {
                if w != u {
                    edges.push((w, u, WW));
                }
            }
            for &r in readers {
                if r != u {
                    edges.push((r, u, RW));
                }
            }
        }
    }
    for w in observed_info {
        committed[w as usize] = true;
    }
    edges
}

fn register_edges(h: &History, f: &mut Facts) {
    if f.reg_next.is_empty() {
        return;
    }
    let mut readers: FxHashMap<(u32, Option<Val>), Vec<u32>> = FxHashMap::default();
    for (t, _) in h.txns.iter().enumerate() {
        let t = t as u32;
        let mut wrote: rustc_hash::FxHashSet<u32> = Default::default();
        for m in h.mops_of(t) {
            match *m {
                Mop::Write { key, .. } => {
                    wrote.insert(key);
                }
                // Only external reads (before the txn's own write) depend on others.
                Mop::ReadReg {
                    key,
                    val,
                    known: true,
                    ..
                } if !wrote.contains(&key) => {
                    let r = readers.entry((key, val)).or_default();
                    if r.last() != Some(&t) {
                        r.push(t);
                    }
                    if let Some(v) = val {
                        if let Some(w) = committed_writer(h, f, key, v) {
                            if w != t {
                                f.edges.push((w, t, WR));
                                if h.txns[w as usize].outcome == Outcome::Info {
                                    f.committed[w as usize] = true;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for ((key, a), nexts) in f.reg_next.iter() {
        let wa = a.and_then(|a| committed_writer(h, f, *key, a));
        for &b in nexts {
            let Some(wb) = committed_writer(h, f, *key, b) else {
                continue;
            };
            if let Some(wa) = wa {
                if wa != wb {
                    f.edges.push((wa, wb, WW));
                }
            }
            for &r in readers.get(&(*key, *a)).map(Vec::as_slice).unwrap_or(&[]) {
                if r != wb {
                    f.edges.push((r, wb, RW));
                }
            }
        }
    }
    // Register reads of values nobody wrote, or that failed / intermediate writers wrote.
    for (&(key, val), rs) in readers.iter() {
        let Some(v) = val else { continue };
        for &r in rs {
            match f.writers.get(h, key, v) {
                None => f.cases.push(Case {
                    kind: "garbage-read",
                    txns: vec![r],
                    key: Some(key),
                    explanation: format!(
                        "T{r} read key {} = {}, which no transaction wrote",
                        h.key(key),
                        h.val_text(v)
                    ),
                }),
                Some(w) if h.txns[w.txn as usize].outcome == Outcome::Fail => f.cases.push(Case {
                    kind: "G1a",
                    txns: vec![w.txn, r],
                    key: Some(key),
                    explanation: format!(
                        "T{r} read key {} = {}, written by T{}, which failed (aborted read)",
                        h.key(key),
                        h.val_text(v),
                        w.txn
                    ),
                }),
                Some(w) if !w.last && w.txn != r => f.cases.push(Case {
                    kind: "G1b",
                    txns: vec![w.txn, r],
                    key: Some(key),
                    explanation: format!(
                        "T{r} read key {} = {}, which T{} wrote but then overwrote in the same transaction (intermediate read)",
                        h.key(key),
                        h.val_text(v),
                        w.txn
                    ),
                }),
                _ => {}
            }
        }
    }
}
