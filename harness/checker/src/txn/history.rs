//! Transactions as the checker holds them: compact, with keys and values interned, built
//! from a history's events one at a time (so a 10M-transaction file never exists as JSON
//! values in memory). List reads are not stored: each is checked against its key's longest
//! list as it arrives and kept as a length into that list (see `ListOrder`).

use crate::history::{Key, Op, OpType, Process, ReadSummary, SeenIndexes, TornTail};
use rustc_hash::FxHashMap;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A value written or read. Integers are themselves; other scalars (strings) are interned
/// to ids from `STR_BASE` up, so they never collide with integers a history uses.
pub type Val = i64;
pub(crate) const STR_BASE: i64 = i64::MAX - (1 << 40);

/// One scalar as it appears in a history.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Int(i64),
    Str(String),
}

/// A micro-op's value as parsed, before interning.
#[derive(Debug, Clone, PartialEq)]
pub enum RawVal {
    Nil,
    One(Scalar),
    List(Vec<Scalar>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MopF {
    Append,
    Read,
    Write,
}

/// A micro-op as parsed: `[f, key, value]` or `[f, key, value, version]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMop {
    pub f: MopF,
    pub key: Key,
    pub value: RawVal,
    pub version: Option<i64>,
}

/// A micro-op of integers as the byte scanner read it, kept flat in its block's
/// [`FlatBuf`] (no vector per line or per read).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlatMop {
    pub f: MopF,
    pub key: i64,
    pub value: FlatVal,
    pub version: Option<i64>,
}

/// A [`FlatMop`]'s value; a list is `(start, len)` in its buffer's `vals`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlatVal {
    Nil,
    One(i64),
    List(u32, u32),
}

/// The micro-ops of the lines of one block, flat.
#[derive(Debug, Default)]
pub struct FlatBuf {
    pub mops: Vec<FlatMop>,
    pub vals: Vec<i64>,
}

impl FlatBuf {
    fn clear(&mut self) {
        self.mops.clear();
        self.vals.clear();
    }

    /// A flat value as [`RawVal`], for an error's words.
    fn raw(&self, v: FlatVal) -> RawVal {
        match v {
            FlatVal::Nil => RawVal::Nil,
            FlatVal::One(v) => RawVal::One(Scalar::Int(v)),
            FlatVal::List(start, len) => RawVal::List(
                self.vals[start as usize..(start + len) as usize]
                    .iter()
                    .map(|v| Scalar::Int(*v))
                    .collect(),
            ),
        }
    }

    /// Copies `mops` (whose lists are in `from`) to the end of this buffer.
    fn extend_from(&mut self, mops: &[FlatMop], from: &FlatBuf) {
        for m in mops {
            let mut m = *m;
            if let FlatVal::List(start, len) = m.value {
                let at = self.vals.len() as u32;
                self.vals
                    .extend_from_slice(&from.vals[start as usize..(start + len) as usize]);
                m.value = FlatVal::List(at, len);
            }
            self.mops.push(m);
        }
    }
}

/// A line's micro-ops: none (null or absent), read by serde or the string-aware scanner,
/// or `(start, len)` in its block's [`FlatBuf`].
#[derive(Debug)]
pub enum LineMops {
    Absent,
    Raw(Vec<RawMop>),
    Flat(u32, u32),
}

/// One parsed line, its micro-ops as [`LineMops`] (the block reader's form of
/// [`ParsedLine`]).
#[derive(Debug)]
pub struct Head {
    pub kind: OpType,
    pub process: Option<u64>,
    pub index: u64,
    pub time: u64,
    pub txn: bool,
    pub mops: LineMops,
}

impl From<ParsedLine> for Head {
    fn from(p: ParsedLine) -> Head {
        Head {
            kind: p.kind,
            process: p.process,
            index: p.index,
            time: p.time,
            txn: p.txn,
            mops: p.mops.map_or(LineMops::Absent, LineMops::Raw),
        }
    }
}

/// An event's micro-ops as given to [`History::event_of`].
enum Given<'a> {
    None,
    Raw(Vec<RawMop>),
    Flat(&'a [FlatMop], &'a FlatBuf),
}

/// An open txn's micro-ops, as its invoke gave them.
#[derive(Debug)]
enum Invoked {
    Raw(Vec<RawMop>),
    /// Copied out of the block (which is reused), into a buffer of its own.
    Flat(FlatBuf),
}

impl Invoked {
    fn is_empty(&self) -> bool {
        match self {
            Invoked::Raw(m) => m.is_empty(),
            Invoked::Flat(b) => b.mops.is_empty(),
        }
    }
}

/// Integer keys below this are interned through a vector indexed by the key (faultline's
/// workloads number their keys from 0); others through a map.
const DENSE_KEY_MAX: i64 = 1 << 22;
const NO_KEY: u32 = u32::MAX;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    /// Unknown (an `info` completion, or never completed).
    Info,
}

/// A micro-op, interned. Reads of lists point into their key's order (`len`) or, when
/// they did not fit it, into `History::odd_reads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mop {
    Append {
        key: u32,
        val: Val,
    },
    /// A list read: `len` elements of the key's longest list, or `odd` (index into
    /// `odd_reads`) when it is not a prefix of it. `None`: not known (not an `ok` txn).
    ReadList {
        key: u32,
        seen: Option<ListRead>,
    },
    /// A register write; its version, where the history gives one, is in
    /// `History::versions` (rarely present, so kept out of every micro-op).
    Write {
        key: u32,
        val: Val,
    },
    /// A register read; `val: None` is the initial (nil) value. `known: false` on txns that
    /// did not complete `ok` (the value read is not known).
    ReadReg {
        key: u32,
        val: Option<Val>,
        known: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRead {
    Prefix(u32),
    Odd(u32),
}

#[derive(Debug, Clone)]
pub struct Txn {
    pub process: u64,
    pub outcome: Outcome,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
    /// Range into `History::mops`.
    pub mops_start: u32,
    pub mops_len: u32,
}

/// The longest list read so far of one key, and the reads that did not fit it.
#[derive(Debug, Clone, Default)]
pub struct ListOrder {
    pub elems: Vec<Val>,
    /// Positions of `elems`, to find duplicates as the list grows; only once the list is
    /// longer than `SCAN_MAX` (most keys' lists are short, and a map per key was most of
    /// the memory and time of growing them: a scan of a short list is as fast).
    seen: Option<Box<FxHashMap<Val, u32>>>,
    /// Elements that appear twice in one read (key's longest or an odd read).
    pub duplicates: Vec<(Val, u32)>,
}

/// Lists up to this long are searched by a scan, longer ones through `ListOrder::seen`.
const SCAN_MAX: usize = 64;

impl ListOrder {
    pub fn contains(&self, v: Val) -> bool {
        self.position(v).is_some()
    }

    /// Where `v` first appears.
    pub fn position(&self, v: Val) -> Option<u32> {
        match &self.seen {
            Some(seen) => seen.get(&v).copied(),
            None => self.elems.iter().position(|&x| x == v).map(|p| p as u32),
        }
    }

    /// Appends `v`, noting it as a duplicate when it is in the list already.
    fn push(&mut self, v: Val) {
        let pos = self.elems.len() as u32;
        if self.contains(v) {
            self.duplicates.push((v, pos));
        } else if let Some(seen) = &mut self.seen {
            seen.insert(v, pos);
        }
        self.elems.push(v);
        if self.seen.is_none() && self.elems.len() > SCAN_MAX {
            let mut seen = FxHashMap::default();
            for (i, &x) in self.elems.iter().enumerate() {
                seen.entry(x).or_insert(i as u32);
            }
            self.seen = Some(Box::new(seen));
        }
    }
}

/// A whole transactional history.
#[derive(Debug, Default)]
pub struct History {
    pub txns: Vec<Txn>,
    pub mops: Vec<Mop>,
    pub keys: Vec<Key>,
    key_ids: FxHashMap<Key, u32>,
    /// Ids of integer keys in `0..DENSE_KEY_MAX`, by key (`NO_KEY`: not seen).
    dense_key_ids: Vec<u32>,
    strs: Vec<String>,
    str_ids: FxHashMap<String, i64>,
    /// Per key: its longest list (list-append keys).
    pub orders: Vec<ListOrder>,
    /// Explicit versions of register micro-ops, by position in `mops`.
    pub versions: FxHashMap<u32, i64>,
    /// Reads that were neither a prefix of their key's longest list nor an extension of
    /// it: (txn, key, the values read).
    pub odd_reads: Vec<(u32, u32, Vec<Val>)>,
    /// Duplicate elements inside one odd read: (odd read, value).
    pub odd_duplicates: Vec<(u32, Val)>,
    /// Events in file order: (txn, completion?) — the real-time order.
    pub events: Vec<(u32, bool)>,
    open: FxHashMap<u64, (u32, Invoked)>,
    /// Buffers of completed invokes' micro-ops, for the next invokes.
    spare_invoked: Vec<FlatBuf>,
    /// Non-transaction client ops seen (they are left out; the result says how many).
    pub other_ops: usize,
    /// Set when a txn mixes list and register micro-ops on one key, or such.
    pub errors: Vec<String>,
    /// A list read's values interned, reused from read to read (most reads are prefixes of
    /// their key's list and need no copy of their own).
    scratch: Vec<Val>,
}

impl History {
    pub fn key(&self, k: u32) -> &Key {
        &self.keys[k as usize]
    }

    pub fn mops_of(&self, t: u32) -> &[Mop] {
        let t = &self.txns[t as usize];
        &self.mops[t.mops_start as usize..(t.mops_start + t.mops_len) as usize]
    }

    /// The values a list read saw.
    pub fn list_read(&self, key: u32, read: ListRead) -> &[Val] {
        match read {
            ListRead::Prefix(len) => &self.orders[key as usize].elems[..len as usize],
            ListRead::Odd(i) => &self.odd_reads[i as usize].2,
        }
    }

    /// A value as JSON, for explanations and reports.
    pub fn val_json(&self, v: Val) -> serde_json::Value {
        if v >= STR_BASE && ((v - STR_BASE) as usize) < self.strs.len() {
            serde_json::Value::String(self.strs[(v - STR_BASE) as usize].clone())
        } else {
            serde_json::Value::from(v)
        }
    }

    pub fn val_text(&self, v: Val) -> String {
        self.val_json(v).to_string()
    }

    fn intern_key(&mut self, k: Key) -> u32 {
        if let Key::Int(i) = k {
            return self.intern_int_key(i);
        }
        if let Some(&id) = self.key_ids.get(&k) {
            return id;
        }
        let id = self.new_key(k.clone());
        self.key_ids.insert(k, id);
        id
    }

    fn intern_int_key(&mut self, k: i64) -> u32 {
        if !(0..DENSE_KEY_MAX).contains(&k) {
            let key = Key::Int(k);
            if let Some(&id) = self.key_ids.get(&key) {
                return id;
            }
            let id = self.new_key(key.clone());
            self.key_ids.insert(key, id);
            return id;
        }
        let i = k as usize;
        if i >= self.dense_key_ids.len() {
            let len = (i + 1).next_power_of_two().max(1024);
            self.dense_key_ids.resize(len, NO_KEY);
        }
        match self.dense_key_ids[i] {
            NO_KEY => {
                let id = self.new_key(Key::Int(k));
                self.dense_key_ids[i] = id;
                id
            }
            id => id,
        }
    }

    fn new_key(&mut self, k: Key) -> u32 {
        let id = self.keys.len() as u32;
        self.keys.push(k);
        self.orders.push(ListOrder::default());
        id
    }

    fn intern_val(&mut self, s: Scalar) -> Result<Val, String> {
        match s {
            Scalar::Int(i) if i >= STR_BASE => Err(format!(
                "value {i} is too large (values must be below {STR_BASE})"
            )),
            Scalar::Int(i) => Ok(i),
            Scalar::Str(s) => {
                if let Some(&id) = self.str_ids.get(&s) {
                    return Ok(id);
                }
                let id = STR_BASE + self.strs.len() as i64;
                self.strs.push(s.clone());
                self.str_ids.insert(s, id);
                Ok(id)
            }
        }
    }

    /// Feeds one event. `mops`: the parsed value of a `txn` op (`None` for a `txn` whose
    /// value is null). Errors say what is wrong with the event; the caller adds where.
    pub fn event(
        &mut self,
        kind: OpType,
        process: u64,
        index: u64,
        time: u64,
        mops: Option<Vec<RawMop>>,
    ) -> Result<(), String> {
        let given = mops.map_or(Given::None, Given::Raw);
        self.event_of(kind, process, index, time, given)
    }

    fn event_of(
        &mut self,
        kind: OpType,
        process: u64,
        index: u64,
        time: u64,
        mops: Given<'_>,
    ) -> Result<(), String> {
        match kind {
            OpType::Invoke => {
                let id = self.txns.len() as u32;
                if self.open.contains_key(&process) {
                    return Err(format!(
                        "process {process} invokes while its previous txn is still open"
                    ));
                }
                self.txns.push(Txn {
                    process,
                    outcome: Outcome::Info,
                    invoke_index: index,
                    complete_index: None,
                    invoke_time: time,
                    complete_time: None,
                    mops_start: 0,
                    mops_len: 0,
                });
                self.events.push((id, false));
                let invoked = match mops {
                    Given::None => Invoked::Raw(Vec::new()),
                    Given::Raw(m) => Invoked::Raw(m),
                    Given::Flat(m, buf) => {
                        let mut own = self.spare_invoked.pop().unwrap_or_default();
                        own.extend_from(m, buf);
                        Invoked::Flat(own)
                    }
                };
                self.open.insert(process, (id, invoked));
            }
            OpType::Ok | OpType::Fail | OpType::Info => {
                let Some((id, invoked)) = self.open.remove(&process) else {
                    if kind == OpType::Info {
                        return Ok(());
                    }
                    return Err(format!(
                        "{kind:?} completion of process {process} has no open invoke"
                    ));
                };
                let outcome = match kind {
                    OpType::Ok => Outcome::Ok,
                    OpType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                // The completion's micro-ops, unless it has none and the invoke had some.
                let completion = match &mops {
                    Given::None => false,
                    Given::Raw(m) => !m.is_empty() || invoked.is_empty(),
                    Given::Flat(m, _) => !m.is_empty() || invoked.is_empty(),
                };
                {
                    let t = &mut self.txns[id as usize];
                    t.outcome = outcome;
                    t.complete_index = Some(index);
                    t.complete_time = Some(time);
                }
                self.events.push((id, true));
                let added = match (completion, mops) {
                    (true, Given::Raw(m)) => self.add_mops(id, m),
                    (true, Given::Flat(m, buf)) => self.add_flat(id, m, buf),
                    _ => Ok(()),
                };
                let added = added.and_then(|()| match invoked {
                    Invoked::Raw(m) if !completion => self.add_mops(id, m),
                    Invoked::Raw(_) => Ok(()),
                    Invoked::Flat(mut buf) => {
                        let r = if completion {
                            Ok(())
                        } else {
                            self.add_flat(id, &buf.mops, &buf)
                        };
                        buf.clear();
                        self.spare_invoked.push(buf);
                        r
                    }
                });
                added?;
            }
        }
        Ok(())
    }

    /// Ends the history: txns still open are `info`, with their invoke's micro-ops. A nil
    /// read of a key that is appended to is an empty list (Elle writes `[:r k nil]`).
    pub fn finish(&mut self) -> Result<(), String> {
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_by_key(|(_, (id, _))| *id);
        for (_, (id, mops)) in open {
            match mops {
                Invoked::Raw(m) => self.add_mops(id, m)?,
                Invoked::Flat(buf) => self.add_flat(id, &buf.mops, &buf)?,
            }
        }
        self.spare_invoked = Vec::new();
        // Per key: how many appends, and the last one.
        let mut appends: Vec<(u32, Val)> = vec![(0, 0); self.keys.len()];
        for m in &self.mops {
            if let Mop::Append { key, val } = *m {
                let a = &mut appends[key as usize];
                a.0 = a.0.saturating_add(1);
                a.1 = val;
            }
        }
        let appended: Vec<bool> = appends.iter().map(|a| a.0 > 0).collect();
        // A key appended once and never read non-empty took the values [] then [x] (Elle
        // infers the same), so a read of [] precedes that append.
        for (k, &(n, val)) in appends.iter().enumerate() {
            let order = &mut self.orders[k];
            if n == 1 && order.elems.is_empty() {
                order.push(val);
            }
        }
        for m in &mut self.mops {
            if let Mop::ReadReg {
                key,
                val: None,
                known,
            } = *m
            {
                if appended[key as usize] {
                    *m = Mop::ReadList {
                        key,
                        seen: known.then_some(ListRead::Prefix(0)),
                    };
                }
            }
        }
        Ok(())
    }

    fn add_mops(&mut self, id: u32, raw: Vec<RawMop>) -> Result<(), String> {
        let ok = self.txns[id as usize].outcome == Outcome::Ok;
        let start = self.mops.len() as u32;
        for m in raw {
            let key = self.intern_key(m.key);
            let mop = match (m.f, m.value) {
                (MopF::Append, RawVal::One(v)) => Mop::Append {
                    key,
                    val: self.intern_val(v)?,
                },
                (MopF::Append, other) => {
                    return Err(format!("append needs one value, got {other:?}"));
                }
                (MopF::Write, RawVal::One(v)) => Mop::Write {
                    key,
                    val: self.intern_val(v)?,
                },
                (MopF::Write, other) => {
                    return Err(format!("w needs one value, got {other:?}"));
                }
                (MopF::Read, RawVal::List(vs)) => {
                    let mut vals = std::mem::take(&mut self.scratch);
                    vals.clear();
                    for v in vs {
                        vals.push(self.intern_val(v)?);
                    }
                    let seen = ok.then(|| self.observe_list(id, key, &vals));
                    self.scratch = vals;
                    Mop::ReadList { key, seen }
                }
                (MopF::Read, RawVal::One(v)) => Mop::ReadReg {
                    key,
                    val: Some(self.intern_val(v)?),
                    known: ok,
                },
                // A read whose value is nil: on an ok txn, the register's initial value;
                // otherwise not known. A list key read as nil is taken as [] (Elle does).
                (MopF::Read, RawVal::Nil) => Mop::ReadReg {
                    key,
                    val: None,
                    known: ok,
                },
            };
            self.push_mop(mop, m.version);
        }
        self.close_mops(id, start);
        Ok(())
    }

    /// [`History::add_mops`] of flat micro-ops (their lists in `buf`), with the same
    /// checks and words.
    fn add_flat(&mut self, id: u32, mops: &[FlatMop], buf: &FlatBuf) -> Result<(), String> {
        let ok = self.txns[id as usize].outcome == Outcome::Ok;
        let start = self.mops.len() as u32;
        let int = |i: i64| -> Result<Val, String> {
            if i >= STR_BASE {
                Err(format!(
                    "value {i} is too large (values must be below {STR_BASE})"
                ))
            } else {
                Ok(i)
            }
        };
        for m in mops {
            let key = self.intern_int_key(m.key);
            let mop = match (m.f, m.value) {
                (MopF::Append, FlatVal::One(v)) => Mop::Append { key, val: int(v)? },
                (MopF::Append, other) => {
                    return Err(format!("append needs one value, got {:?}", buf.raw(other)));
                }
                (MopF::Write, FlatVal::One(v)) => Mop::Write { key, val: int(v)? },
                (MopF::Write, other) => {
                    return Err(format!("w needs one value, got {:?}", buf.raw(other)));
                }
                (MopF::Read, FlatVal::List(from, len)) => {
                    let vals = &buf.vals[from as usize..(from + len) as usize];
                    if let Some(&v) = vals.iter().find(|&&v| v >= STR_BASE) {
                        int(v)?;
                    }
                    let seen = ok.then(|| self.observe_list(id, key, vals));
                    Mop::ReadList { key, seen }
                }
                (MopF::Read, FlatVal::One(v)) => Mop::ReadReg {
                    key,
                    val: Some(int(v)?),
                    known: ok,
                },
                (MopF::Read, FlatVal::Nil) => Mop::ReadReg {
                    key,
                    val: None,
                    known: ok,
                },
            };
            self.push_mop(mop, m.version);
        }
        self.close_mops(id, start);
        Ok(())
    }

    /// Appends one micro-op of the transaction being added, with the version the system
    /// returned for it (kept for writes and register reads only).
    fn push_mop(&mut self, mop: Mop, version: Option<i64>) {
        if let Some(v) = version {
            if matches!(mop, Mop::Write { .. } | Mop::ReadReg { .. }) {
                self.versions.insert(self.mops.len() as u32, v);
            }
        }
        self.mops.push(mop);
    }

    /// Gives txn `id` the micro-ops pushed since `start`.
    fn close_mops(&mut self, id: u32, start: u32) {
        let t = &mut self.txns[id as usize];
        t.mops_start = start;
        t.mops_len = self.mops.len() as u32 - start;
    }

    /// Fits one list read into its key's longest list.
    fn observe_list(&mut self, txn: u32, key: u32, vals: &[Val]) -> ListRead {
        let order = &mut self.orders[key as usize];
        let n = order.elems.len().min(vals.len());
        if order.elems[..n] == vals[..n] {
            if vals.len() > order.elems.len() {
                for &v in &vals[order.elems.len()..] {
                    order.push(v);
                }
            }
            return ListRead::Prefix(vals.len() as u32);
        }
        let i = self.odd_reads.len() as u32;
        let mut seen = rustc_hash::FxHashSet::default();
        for &v in vals {
            if !seen.insert(v) {
                self.odd_duplicates.push((i, v));
            }
        }
        self.odd_reads.push((txn, key, vals.to_vec()));
        ListRead::Odd(i)
    }

    /// Builds a history from faultline `Op`s (jsonl or imported EDN). Only client `txn`
    /// ops are taken; others are counted in `other_ops`.
    pub fn from_ops(ops: &[Op]) -> Result<History, String> {
        let mut h = History::default();
        for op in ops {
            let Process::Client(p) = op.process else {
                continue;
            };
            if op.f != "txn" {
                h.other_ops += 1;
                continue;
            }
            let mops = mops_from_json(&op.value)
                .map_err(|e| format!("op index {}: value: {e}", op.index))?;
            h.event(op.kind, p, op.index, op.time, mops)
                .map_err(|e| format!("op index {}: {e}", op.index))?;
        }
        h.finish()?;
        Ok(h)
    }
}

fn scalar_from_json(v: &serde_json::Value) -> Result<Scalar, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Scalar::Int)
            .ok_or_else(|| format!("expected an integer value, got {n}")),
        serde_json::Value::String(s) => Ok(Scalar::Str(s.clone())),
        other => Err(format!("expected an integer or string value, got {other}")),
    }
}

fn key_from_json(v: &serde_json::Value) -> Result<Key, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Key::Int)
            .ok_or_else(|| format!("expected an integer key, got {n}")),
        serde_json::Value::String(s) => Ok(Key::Str(s.clone())),
        other => Err(format!("expected an integer or string key, got {other}")),
    }
}

fn mop_f(name: &str) -> Result<MopF, String> {
    match name {
        "append" => Ok(MopF::Append),
        "r" => Ok(MopF::Read),
        "w" => Ok(MopF::Write),
        other => Err(format!(
            "unknown micro-op {other:?}; expected \"append\", \"r\" or \"w\""
        )),
    }
}

/// A txn op's JSON value → micro-ops; `None` for null.
pub fn mops_from_json(v: &serde_json::Value) -> Result<Option<Vec<RawMop>>, String> {
    let items = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Array(items) => items,
        other => return Err(format!("expected a list of micro-ops, got {other}")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let parts = m
            .as_array()
            .filter(|a| a.len() == 3 || a.len() == 4)
            .ok_or_else(|| {
                format!(
                    "micro-op {i}: expected [f, key, value] or [f, key, value, version], got {m}"
                )
            })?;
        let f = parts[0]
            .as_str()
            .ok_or_else(|| format!("micro-op {i}: f must be a string, got {}", parts[0]))
            .and_then(mop_f)
            .map_err(|e| format!("micro-op {i}: {e}"))?;
        let key = key_from_json(&parts[1]).map_err(|e| format!("micro-op {i}: {e}"))?;
        let value = match &parts[2] {
            serde_json::Value::Null => RawVal::Nil,
            serde_json::Value::Array(vs) => RawVal::List(
                vs.iter()
                    .map(scalar_from_json)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("micro-op {i}: {e}"))?,
            ),
            s => RawVal::One(scalar_from_json(s).map_err(|e| format!("micro-op {i}: {e}"))?),
        };
        let version = match parts.get(3) {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| format!("micro-op {i}: version must be an integer, got {v}"))?,
            ),
        };
        out.push(RawMop {
            f,
            key,
            value,
            version,
        });
    }
    Ok(Some(out))
}

// ---- The fast jsonl path: one line → (type, process, index, time, micro-ops) with no
// intermediate JSON values.

/// A `value` field: micro-ops, or anything else (ignored; nemesis values, other ops).
enum LineValue {
    Mops(Vec<RawMop>),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for LineValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LineValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_unit<E>(self) -> Result<LineValue, E> {
                Ok(LineValue::Null)
            }
            fn visit_none<E>(self) -> Result<LineValue, E> {
                Ok(LineValue::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LineValue, A::Error> {
                let mut out = Vec::new();
                let mut all = true;
                while let Some(m) = seq.next_element::<MaybeMop>()? {
                    match m {
                        MaybeMop::Mop(m) if all => out.push(m),
                        _ => all = false,
                    }
                }
                Ok(if all {
                    LineValue::Mops(out)
                } else {
                    LineValue::Other
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<LineValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LineValue::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<LineValue, E> {
                Ok(LineValue::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<LineValue, E> {
                Ok(LineValue::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<LineValue, E> {
                Ok(LineValue::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<LineValue, E> {
                Ok(LineValue::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<LineValue, E> {
                Ok(LineValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

enum MaybeMop {
    Mop(RawMop),
    Other,
}

struct AnyScalar(Option<Scalar>);

impl<'de> Deserialize<'de> for AnyScalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyScalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<AnyScalar, E> {
                Ok(AnyScalar(Some(Scalar::Int(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyScalar, E> {
                i64::try_from(v)
                    .map(|v| AnyScalar(Some(Scalar::Int(v))))
                    .map_err(|_| E::custom(format!("value {v} is too large")))
            }
            fn visit_str<E>(self, v: &str) -> Result<AnyScalar, E> {
                Ok(AnyScalar(Some(Scalar::Str(v.to_string()))))
            }
            fn visit_unit<E>(self) -> Result<AnyScalar, E> {
                Ok(AnyScalar(None))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyScalar, E> {
                Err(E::custom(format!("expected an integer, got {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// The third element of a micro-op: nil, a scalar, or a list of scalars.
struct AnyVal(RawVal);

impl<'de> Deserialize<'de> for AnyVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyVal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("nil, an integer, a string or a list of them")
            }
            fn visit_unit<E>(self) -> Result<AnyVal, E> {
                Ok(AnyVal(RawVal::Nil))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AnyVal, E> {
                Ok(AnyVal(RawVal::One(Scalar::Int(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyVal, E> {
                i64::try_from(v)
                    .map(|v| AnyVal(RawVal::One(Scalar::Int(v))))
                    .map_err(|_| E::custom(format!("value {v} is too large")))
            }
            fn visit_str<E>(self, v: &str) -> Result<AnyVal, E> {
                Ok(AnyVal(RawVal::One(Scalar::Str(v.to_string()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyVal, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(8));
                while let Some(AnyScalar(s)) = seq.next_element()? {
                    out.push(s.ok_or_else(|| de::Error::custom("a list read holds null"))?);
                }
                Ok(AnyVal(RawVal::List(out)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for MaybeMop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeMop;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a micro-op [f, key, value]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeMop, A::Error> {
                let f: std::borrow::Cow<'de, str> = match seq.next_element()? {
                    Some(f) => f,
                    None => return Ok(MaybeMop::Other),
                };
                let f = mop_f(&f).map_err(de::Error::custom)?;
                let AnyScalar(key) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("micro-op has no key"))?;
                let key = match key {
                    Some(Scalar::Int(k)) => Key::Int(k),
                    Some(Scalar::Str(k)) => Key::Str(k),
                    None => return Err(de::Error::custom("micro-op key is null")),
                };
                let AnyVal(value) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("micro-op has no value"))?;
                let version = seq.next_element::<Option<i64>>()?.unwrap_or_default();
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("micro-op has more than 4 elements"));
                }
                Ok(MaybeMop::Mop(RawMop {
                    f,
                    key,
                    value,
                    version,
                }))
            }
            fn visit_str<E>(self, _: &str) -> Result<MaybeMop, E> {
                Ok(MaybeMop::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<MaybeMop, E> {
                Ok(MaybeMop::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<MaybeMop, E> {
                Ok(MaybeMop::Other)
            }
            fn visit_unit<E>(self) -> Result<MaybeMop, E> {
                Ok(MaybeMop::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<MaybeMop, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeMop::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[allow(dead_code)]
    index: u64,
    time: u64,
    #[serde(rename = "type")]
    kind: OpType,
    process: Process,
    #[serde(borrow)]
    f: std::borrow::Cow<'a, str>,
    #[serde(default = "null_value")]
    value: LineValue,
}

fn null_value() -> LineValue {
    LineValue::Null
}

/// One parsed `history.jsonl` line, ready for [`History::event`].
#[derive(Debug)]
pub struct ParsedLine {
    pub kind: OpType,
    pub process: Option<u64>,
    pub index: u64,
    pub time: u64,
    pub txn: bool,
    pub mops: Option<Vec<RawMop>>,
}

/// Parses one line of `history.jsonl` for the transaction checker.
pub fn parse_line(text: &str) -> Result<ParsedLine, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let txn = line.f == "txn";
    let mops = match line.value {
        LineValue::Mops(m) => Some(m),
        LineValue::Null => None,
        LineValue::Other if txn => {
            return Err("a txn's value must be a list of micro-ops [f, key, value]".into())
        }
        LineValue::Other => None,
    };
    Ok(ParsedLine {
        kind: line.kind,
        process: match line.process {
            Process::Client(p) => Some(p),
            Process::Nemesis => None,
        },
        index: line.index,
        time: line.time,
        txn,
        mops,
    })
}

/// Bytes handed to a parser thread at once (cut at a line end).
const BLOCK_BYTES: usize = 4 << 20;
/// Blocks read ahead of the one being fed: bounds the memory of parsed-but-unfed lines.
const BLOCKS_AHEAD_MAX: usize = 4;

/// One block's lines parsed. Line numbers are the line's place in the block (from 0): the
/// block's first line number is known only when the blocks before it are fed. The
/// buffers are reused from block to block (allocating them per block was a page fault per
/// 4 KB of history, and freeing one thread's allocations on another contended for
/// malloc's locks).
#[derive(Default)]
struct ParsedBlock {
    lines: Vec<(u32, Head)>,
    flat: FlatBuf,
    /// The first line that is not an event, and why.
    err: Option<(u32, String)>,
    /// A torn last line (only in the file's last block): its place and bytes.
    torn: Option<(u32, usize)>,
    /// Line ends in the block.
    newlines: usize,
}

/// `last_unterminated`: this is the file's last block and it does not end with a newline,
/// so its last line may be torn (a crash mid-write); such a line that does not parse is
/// skipped and noted, as `crate::history::HistoryReader` does.
fn parse_block(block: &[u8], last_unterminated: bool, out: &mut ParsedBlock) {
    out.lines.clear();
    out.flat.clear();
    out.err = None;
    out.torn = None;
    out.newlines = 0;
    // The lines as `block.split(|c| c == b'\n')` gives them (a last one after the last
    // line end, maybe empty), found 8 bytes at a time.
    let mut next = Some(0);
    let mut i = 0u32;
    while let Some(start) = next {
        let (raw, last) = match find_newline(&block[start..]) {
            Some(len) => {
                next = Some(start + len + 1);
                (&block[start..start + len], false)
            }
            None => {
                next = None;
                (&block[start..], true)
            }
        };
        let line = i;
        i += 1;
        if !last {
            out.newlines += 1;
        }
        let bytes = raw.len();
        let raw = raw.trim_ascii_end();
        if raw.is_empty() {
            continue;
        }
        let i = line;
        let (mops, vals) = (out.flat.mops.len(), out.flat.vals.len());
        let parsed = match super::fastline::parse_flat(raw, &mut out.flat) {
            Some(h) => Ok(h),
            None => {
                out.flat.mops.truncate(mops);
                out.flat.vals.truncate(vals);
                match super::fastline::parse(raw) {
                    Some(p) => Ok(Head::from(p)),
                    None => std::str::from_utf8(raw)
                        .map_err(|e| format!("not UTF-8: {e}"))
                        .and_then(parse_line)
                        .map(Head::from),
                }
            }
        };
        match parsed {
            Ok(h) => out.lines.push((i, h)),
            Err(_) if last_unterminated && last => {
                out.torn = Some((i, bytes));
                return;
            }
            Err(e) => {
                out.err = Some((i, e));
                return;
            }
        }
    }
}

/// Where the first `\n` of `hay` is: a word at a time (the byte loop was a third of the
/// parser threads' own time).
fn find_newline(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * b'\n' as u64;
    let mut at = 0;
    let mut words = hay.chunks_exact(8);
    for word in words.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w) ^ pattern;
        // A byte of x is zero where the word holds '\n'; the lowest flagged byte is the
        // first such (a borrow can only flag bytes above a zero one).
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == b'\n')
        .map(|p| at + p)
}

/// Reads a transactional `history.jsonl` straight into a `History`; errors name the file
/// and line. Lines are parsed on every core in blocks while this thread feeds them, in
/// file order, into the history.
pub fn read_jsonl<R: std::io::Read>(r: R, file: &str) -> Result<History, String> {
    read_jsonl_summary(r, file).map(|(h, _)| h)
}

/// [`read_jsonl`], with what the read found besides the events (a torn last line, as
/// [`crate::history::ReadSummary`] says it): the one reader of txn histories, used by
/// `faultline check` and the benchmark.
pub fn read_jsonl_summary<R: std::io::Read>(
    mut r: R,
    file: &str,
) -> Result<(History, ReadSummary), String> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut h = History::default();
    let mut summary = ReadSummary::default();
    let mut seen = SeenIndexes::default();
    // Parsed blocks' buffers, back from the feeder for the parsers.
    let spare_parsed: std::sync::Mutex<Vec<ParsedBlock>> = Default::default();
    std::thread::scope(|scope| -> Result<(), String> {
        let (work_tx, work_rx) =
            std::sync::mpsc::sync_channel::<(usize, Vec<u8>, usize, bool)>(threads);
        let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, ParsedBlock, Vec<u8>)>();
        for _ in 0..threads {
            let (work_rx, done_tx, spare_parsed) =
                (work_rx.clone(), done_tx.clone(), &spare_parsed);
            scope.spawn(move || loop {
                let next = work_rx
                    .lock()
                    .map_err(|_| ())
                    .and_then(|rx| rx.recv().map_err(|_| ()));
                let Ok((seq, block, len, last_unterminated)) = next else {
                    return;
                };
                let mut out = spare_parsed
                    .lock()
                    .ok()
                    .and_then(|mut s| s.pop())
                    .unwrap_or_default();
                parse_block(&block[..len], last_unterminated, &mut out);
                if done_tx.send((seq, out, block)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut pending: std::collections::BTreeMap<usize, (ParsedBlock, Vec<u8>)> =
            Default::default();
        let (mut sent, mut fed) = (0usize, 0usize);
        // Read buffers back from the parsers.
        let mut spare_blocks: Vec<Vec<u8>> = Vec::new();
        let mut carry: Vec<u8> = Vec::new();
        // The number of the next block's first line.
        let mut line_no = 1usize;
        let mut eof = false;
        let mut unterminated_tail = false;
        let mut feed_next =
            |pending: &mut std::collections::BTreeMap<usize, (ParsedBlock, Vec<u8>)>,
             fed: &mut usize,
             spare_blocks: &mut Vec<Vec<u8>>,
             line_no: &mut usize|
             -> Result<(), String> {
                while !pending.contains_key(fed) {
                    match done_rx.recv() {
                        Ok((seq, b, block)) => {
                            pending.insert(seq, (b, block));
                        }
                        Err(_) => return Err(format!("{file}: a parser thread stopped")),
                    }
                }
                let Some((mut b, block)) = pending.remove(fed) else {
                    return Err(format!("{file}: a parser thread stopped"));
                };
                spare_blocks.push(block);
                *fed += 1;
                let base = *line_no;
                for (i, p) in b.lines.drain(..) {
                    let n = base + i as usize;
                    // Every event's index is its own, as the generic reader demands.
                    if !seen.insert(p.index, summary.events as u64) {
                        return Err(format!(
                            "{file}:{n}: {}",
                            crate::history::duplicate_index(p.index)
                        ));
                    }
                    summary.events += 1;
                    summary.lines = n;
                    h.feed_head(p, &b.flat)
                        .map_err(|e| format!("{file}:{n}: {e}"))?;
                }
                if let Some((i, bytes)) = b.torn {
                    let t = TornTail {
                        line: base + i as usize,
                        bytes,
                    };
                    summary.lines = t.line - 1;
                    summary.torn_tail = Some(t);
                }
                if let Some((i, e)) = b.err.take() {
                    return Err(format!("{file}:{}: {e}", base + i as usize));
                }
                *line_no += b.newlines;
                if let Ok(mut s) = spare_parsed.lock() {
                    s.push(b);
                }
                Ok(())
            };
        while !eof {
            let mut block = spare_blocks.pop().unwrap_or_default();
            let start = carry.len();
            let want = start + BLOCK_BYTES;
            if block.len() < want {
                block.resize(want, 0);
            }
            block[..start].copy_from_slice(&carry);
            carry.clear();
            let mut len = start;
            while len < want {
                match r.read(&mut block[len..want]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => len += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("{file}: {e}")),
                }
            }
            if !eof {
                // The tail after the last line end waits for the next block.
                match block[..len].iter().rposition(|&c| c == b'\n') {
                    Some(cut) => {
                        carry.extend_from_slice(&block[cut + 1..len]);
                        len = cut + 1;
                    }
                    None => {
                        carry.extend_from_slice(&block[..len]);
                        spare_blocks.push(block);
                        continue;
                    }
                }
            }
            let last_unterminated = eof && len > 0 && block[len - 1] != b'\n';
            unterminated_tail |= last_unterminated;
            work_tx
                .send((sent, block, len, last_unterminated))
                .map_err(|_| format!("{file}: a parser thread stopped"))?;
            sent += 1;
            if sent - fed > BLOCKS_AHEAD_MAX {
                feed_next(&mut pending, &mut fed, &mut spare_blocks, &mut line_no)?;
            }
        }
        drop(work_tx);
        while fed < sent {
            feed_next(&mut pending, &mut fed, &mut spare_blocks, &mut line_no)?;
        }
        // Blank lines at the end count as read, as the generic reader counts them.
        if summary.torn_tail.is_none() {
            summary.lines = line_no - 1 + usize::from(unterminated_tail);
        }
        Ok(())
    })?;
    h.finish().map_err(|e| format!("{file}: {e}"))?;
    Ok((h, summary))
}

impl History {
    /// Feeds one parsed line (non-client and non-txn lines are skipped or counted).
    pub fn feed(&mut self, p: ParsedLine) -> Result<(), String> {
        self.feed_head(Head::from(p), &FlatBuf::default())
    }

    /// [`History::feed`] of a line from a block, its flat micro-ops in `flat`.
    fn feed_head(&mut self, p: Head, flat: &FlatBuf) -> Result<(), String> {
        let Some(process) = p.process else {
            return Ok(());
        };
        if !p.txn {
            self.other_ops += 1;
            return Ok(());
        }
        let given = match p.mops {
            LineMops::Absent => Given::None,
            LineMops::Raw(m) => Given::Raw(m),
            LineMops::Flat(start, len) => {
                Given::Flat(&flat.mops[start as usize..(start + len) as usize], flat)
            }
        };
        self.event_of(p.kind, process, p.index, p.time, given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_line_parser_agrees_with_the_json_path() {
        let text = r#"{"index":3,"time":9,"type":"ok","process":2,"f":"txn","value":[["append",1,4],["r","x",[1,"a",3]],["w",2,5,7],["r",2,null]]}"#;
        let p = parse_line(text).unwrap();
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(p.mops, mops_from_json(&v["value"]).unwrap());
        assert_eq!(p.process, Some(2));
        let nem = parse_line(r#"{"index":4,"time":10,"type":"info","process":"nemesis","f":"start-partition","value":{"n1":["n2"]}}"#).unwrap();
        assert_eq!(nem.process, None);
        let err = parse_line(
            r#"{"index":3,"time":9,"type":"ok","process":2,"f":"txn","value":[["cas",1,4]]}"#,
        )
        .unwrap_err();
        assert!(err.contains("unknown micro-op"), "{err}");
    }

    #[test]
    fn read_jsonl_names_the_line_of_an_error_after_feeding_the_ones_before() {
        let ok =
            r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"txn","value":[["r",1,null]]}"#;
        let again = ok.replace("\"index\":0", "\"index\":2");
        let text = format!("{ok}\n\n{again}\n{{\"index\":1}}\n");
        let err = read_jsonl(std::io::Cursor::new(text), "h.jsonl").unwrap_err();
        // Line 3 (a second invoke of process 0) fails in feeding, before line 4's parse error.
        assert!(err.starts_with("h.jsonl:3: process 0 invokes"), "{err}");
        // A bad last line is an error when a newline ends it (without one, it is torn).
        let text = format!("{ok}\n{{\"index\":1}}\n");
        let err = read_jsonl(std::io::Cursor::new(text), "h.jsonl").unwrap_err();
        assert!(err.starts_with("h.jsonl:2: "), "{err}");
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_said_as_the_generic_reader_does() {
        let inv = r#"{"index":0,"time":1,"type":"invoke","process":0,"f":"txn","value":[["append",1,4]]}"#;
        let ok =
            r#"{"index":1,"time":2,"type":"ok","process":0,"f":"txn","value":[["append",1,4]]}"#;
        let generic = |text: &str| {
            let mut r = crate::history::HistoryReader::new(text.as_bytes(), "h.jsonl");
            let ops: Result<Vec<_>, _> = r.by_ref().collect();
            ops.map(|_| r.summary().clone()).map_err(|e| e.to_string())
        };
        for text in [
            format!("{inv}\n{ok}\n{{\"index\":2,\"ti"),
            format!("{inv}\n\n{ok}"),
            format!("{inv}\n{ok}\n\n"),
            format!("{inv}\n{ok}\n  "),
            format!("{inv}\n{}", &ok[..40]),
        ] {
            let (h, summary) = read_jsonl_summary(std::io::Cursor::new(&text), "h.jsonl")
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(Ok(summary), generic(&text), "{text}");
            assert_eq!(h.txns.len(), 1);
        }
        // Only the last line can be torn: a bad line before a newline is an error.
        let text = format!("{inv}\n{}\n", &ok[..40]);
        let err = read_jsonl_summary(std::io::Cursor::new(text), "h.jsonl").unwrap_err();
        assert!(err.starts_with("h.jsonl:2: "), "{err}");
        // Each event has its own index, as the generic reader demands.
        let text = format!("{inv}\n{}\n", ok.replace("\"index\":1", "\"index\":0"));
        let err = read_jsonl_summary(std::io::Cursor::new(&text), "h.jsonl").unwrap_err();
        assert_eq!(err, generic(&text).unwrap_err());
    }

    /// What a history holds, in words that do not depend on how it was built.
    fn contents(h: &History) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}",
            h.txns,
            h.mops,
            h.keys,
            h.orders
                .iter()
                .map(|o| (&o.elems, &o.duplicates))
                .collect::<Vec<_>>(),
            h.odd_reads,
            h.events,
            {
                let mut v: Vec<_> = h.versions.iter().collect();
                v.sort();
                v
            },
            h.other_ops
        )
    }

    #[test]
    fn the_block_reader_builds_what_the_generic_reader_and_from_ops_build() {
        // Generated lines (all integers: the flat path), with stale reads, dirty aborts,
        // info and fail, plus lines only the string-aware scanner or serde reads (string
        // keys and values, versions, escapes, a nemesis op, an invoke whose completion
        // has no value) and keys past the dense range.
        let mut text = Vec::new();
        let p = crate::txn::generate::Params {
            seed: 7,
            txns: 3000,
            processes: 6,
            active_keys: 4,
            appends_per_key_max: 80,
            info_fraction: 0.05,
            fail_fraction: 0.05,
            stale_read_p: 0.05,
            dirty_fail_p: 0.5,
            ..Default::default()
        };
        crate::txn::generate::write_history(&p, &mut text).unwrap();
        let mut text = String::from_utf8(text).unwrap();
        for (index, extra) in (1_000_000u64..).zip([
            r#""type":"invoke","process":900,"f":"txn","value":[["append","k",1],["w",5,"s"]]"#,
            r#""type":"ok","process":900,"f":"txn","value":[["append","k",1],["w",5,"s",3]]"#,
            r#""type":"invoke","process":901,"f":"txn","value":[["r","k\"q",null],["append",99999999999,4]]"#,
            r#""type":"ok","process":901,"f":"txn","value":[["r","k\"q",[]],["append",99999999999,4]]"#,
            r#""type":"info","process":"nemesis","f":"start-partition","value":{"n1":["n2"]}"#,
            r#""type":"invoke","process":902,"f":"txn","value":[["append",-3,7],["r",-3,null]]"#,
            r#""type":"info","process":902,"f":"txn""#,
            r#""type":"invoke","process":903,"f":"txn","value":[["w",8,1,1],["r",8,null,2]]"#,
            r#""type":"ok","process":903,"f":"txn","value":[]"#,
            r#""type":"invoke","process":904,"f":"txn","value":[["append",1,123456]]"#,
        ]) {
            text.push_str(&format!("{{\"index\":{index},\"time\":{index},{extra}}}\n"));
        }
        let block = read_jsonl(std::io::Cursor::new(&text), "h.jsonl").unwrap();
        let ops: Vec<Op> = crate::history::HistoryReader::new(text.as_bytes(), "h.jsonl")
            .collect::<Result<_, _>>()
            .unwrap();
        let generic = History::from_ops(&ops).unwrap();
        assert_eq!(contents(&block), contents(&generic));
        for o in [Outcome::Ok, Outcome::Info, Outcome::Fail] {
            assert!(
                block.txns.iter().filter(|t| t.outcome == o).count() > 50,
                "{o:?}"
            );
        }
        assert!(block.keys.contains(&Key::Str("k\"q".into())));
        assert!(block.keys.contains(&Key::Int(99999999999)));
        // w 5 "s" 3, and the invoke's two of process 903 (its completion has none).
        assert_eq!(block.versions.len(), 3);
    }

    #[test]
    fn the_word_at_a_time_newline_search_finds_the_first_newline() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = (rng % 40) as usize;
            // Bytes 0..=15 and 0x80.., so '\n' (10) and its neighbours are common.
            let hay: Vec<u8> = (0..len)
                .map(|j| {
                    let b = (rng >> (j % 56)) as u8;
                    if b & 1 == 0 {
                        b >> 4
                    } else {
                        b | 0x80
                    }
                })
                .collect();
            assert_eq!(
                find_newline(&hay),
                hay.iter().position(|&c| c == b'\n'),
                "{hay:?}"
            );
        }
    }

    #[test]
    fn reads_that_do_not_fit_are_kept_apart() {
        let mut h = History::default();
        let read = |vals: &[i64]| {
            vec![RawMop {
                f: MopF::Read,
                key: Key::Int(1),
                value: RawVal::List(vals.iter().map(|v| Scalar::Int(*v)).collect()),
                version: None,
            }]
        };
        for (p, vals) in [(0, &[1, 2][..]), (1, &[1]), (2, &[1, 2, 3]), (3, &[1, 3])] {
            h.event(OpType::Invoke, p, 0, 0, None).unwrap();
            h.event(OpType::Ok, p, 0, 0, Some(read(vals))).unwrap();
        }
        h.finish().unwrap();
        assert_eq!(h.orders[0].elems, vec![1, 2, 3]);
        assert_eq!(h.odd_reads.len(), 1);
        assert_eq!(h.list_read(0, ListRead::Odd(0)), &[1, 3]);
    }
}

#[cfg(test)]
mod size {
    #[test]
    fn a_micro_op_stays_small() {
        // 10M txns of ~2.5 micro-ops each: every 8 bytes here is 200 MB of peak memory.
        assert!(std::mem::size_of::<super::Mop>() <= 24);
    }
}
