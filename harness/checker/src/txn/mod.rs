//! The transactional checker, Elle-style: histories of list-append (`append k v`,
//! `r k [v ...]`) and rw-register (`w k v`, `r k v`, optional versions) transactions are
//! turned into a dependency graph whose cycles, and a few direct checks, are isolation
//! anomalies; a consistency model says which of them make the history invalid.
//!
//! Layout:
//! - `history`: compact transactions built event by event, jsonl read on every core;
//! - `fastline`: the byte scanner for the lines faultline writes (serde reads the rest);
//! - `infer`: version orders, anomalies without cycles, ww / wr / rw edges;
//! - `graph`: process and real-time edges, components, shortest paths;
//! - `cycles`: the shortest witness cycle of each forbidden class per component;
//! - `explain`: a sentence per edge;
//! - `model`: the consistency models and what each forbids.
//!
//! Entry points: [`check_ops`] (faultline `Op`s, e.g. from EDN) and [`check`] (a
//! [`History`] read by [`history::read_jsonl`]).

pub mod cycles;
pub mod explain;
mod fastline;
pub mod generate;
pub mod graph;
pub mod history;
pub mod infer;
pub mod model;

pub use history::{History, Outcome};

use crate::history::{Key, Op};
use crate::verdict::Validity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Anomalies of one class explained in full; beyond this they are only counted.
pub const EXPLAINED_PER_KIND_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct TxnOptions {
    /// A name from [`model::MODELS`].
    pub consistency_model: String,
    /// States the cycle search may visit in all before the verdict becomes unknown.
    pub search_states_max: u64,
}

impl TxnOptions {
    /// The default options with this consistency model (`None`: the default model).
    pub fn with_model(model: Option<&str>) -> TxnOptions {
        TxnOptions {
            consistency_model: model.unwrap_or(model::DEFAULT_MODEL).to_string(),
            ..TxnOptions::default()
        }
    }
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            consistency_model: model::DEFAULT_MODEL.to_string(),
            search_states_max: 200_000_000,
        }
    }
}

/// The transactional checker's verdict, as `results.json` stores it (`name: "txn"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnResult {
    pub valid: Validity,
    pub consistency_model: String,
    pub duration_ms: f64,
    /// Transactions in all, and by outcome.
    pub txns: usize,
    pub ok: usize,
    pub info: usize,
    pub fail: usize,
    /// Edges of the graph searched (after merging parallel ones).
    pub edges: usize,
    /// Every anomaly class found, sorted.
    pub anomaly_types: Vec<String>,
    /// Those the model forbids (what makes `valid` false).
    pub forbidden: Vec<String>,
    /// Models the anomalies rule out, weakest first.
    pub not: Vec<String>,
    /// How many of each class were found.
    pub counts: BTreeMap<String, usize>,
    /// Up to [`EXPLAINED_PER_KIND_MAX`] of each class, explained.
    pub anomalies: Vec<TxnAnomaly>,
    /// Why the verdict is unknown; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnAnomaly {
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the consistency model forbids it.
    pub forbidden: bool,
    /// The transactions involved; for a cycle, in cycle order.
    pub txns: Vec<TxnRef>,
    /// For a cycle: one step per edge, from `txns[i]` to the next.
    pub steps: Vec<TxnStep>,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnRef {
    /// `T{id}`: the txn's position in invoke order.
    pub id: u32,
    pub process: u64,
    #[serde(rename = "type")]
    pub outcome: Outcome,
    pub invoke_index: u64,
    pub complete_index: Option<u64>,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnStep {
    pub from: u32,
    pub to: u32,
    /// ww, wr, rw, process or realtime.
    pub rel: String,
    pub key: Option<Key>,
    pub explanation: String,
}

// The wording every view of an anomaly shares (the terminal's and report.html's), so that
// both say the same thing; each view only escapes and lays it out.
impl TxnAnomaly {
    /// Its class, and whether the model allows it.
    pub fn heading(&self) -> String {
        if self.forbidden {
            self.kind.clone()
        } else {
            format!("{} (allowed by the model)", self.kind)
        }
    }
}

impl TxnRef {
    /// `ok`, `info` or `fail`.
    pub fn outcome_name(&self) -> &'static str {
        match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Info => "info",
            Outcome::Fail => "fail",
        }
    }

    /// The history events it spans: `#invoke .. #completion`, or `.. end` when it never
    /// completed.
    pub fn events(&self) -> String {
        format!(
            "#{} .. {}",
            self.invoke_index,
            self.complete_index
                .map_or("end".into(), |c| format!("#{c}"))
        )
    }
}

impl TxnStep {
    /// `T1 -rw-> T2: why`.
    pub fn sentence(&self) -> String {
        format!(
            "T{} -{}-> T{}: {}",
            self.from, self.rel, self.to, self.explanation
        )
    }
}

fn txn_ref(h: &History, t: u32) -> TxnRef {
    let x = &h.txns[t as usize];
    TxnRef {
        id: t,
        process: x.process,
        outcome: x.outcome,
        invoke_index: x.invoke_index,
        complete_index: x.complete_index,
        invoke_time: x.invoke_time,
        complete_time: x.complete_time,
        value: explain::txn_value(h, t),
    }
}

/// Checks faultline `Op`s (client `txn` ops; others are ignored).
pub fn check_ops(ops: &[Op], options: &TxnOptions) -> Result<TxnResult, String> {
    let started = std::time::Instant::now();
    let h = History::from_ops(ops)?;
    let mut r = check(&h, options)?;
    r.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(r)
}

/// Whether ops look like a transactional history this checker reads: some client `txn`
/// whose micro-ops are `append`, `r` or `w`.
pub fn is_txn_history(ops: &[Op]) -> bool {
    ops.iter().any(|o| {
        o.f == "txn"
            && o.value.as_array().is_some_and(|mops| {
                mops.iter().any(|m| {
                    m.get(0)
                        .and_then(|f| f.as_str())
                        .is_some_and(|f| matches!(f, "append" | "r" | "w"))
                })
            })
    })
}

/// Checks a history against `options.consistency_model`. `Err` only for an unknown model.
pub fn check(h: &History, options: &TxnOptions) -> Result<TxnResult, String> {
    check_timed(h, options, &mut Vec::new(), || 0.0)
}

/// Each phase of [`check`], in order, with its wall seconds and CPU seconds (for the
/// benchmark's breakdown: the CPU over the wall time says how many cores it kept busy).
pub type Phases = Vec<(&'static str, f64, f64)>;

/// [`check`], noting each phase in `phases`; `cpu_s` reads the process's CPU seconds.
pub fn check_timed(
    h: &History,
    options: &TxnOptions,
    phases: &mut Phases,
    cpu_s: impl Fn() -> f64,
) -> Result<TxnResult, String> {
    let started = std::time::Instant::now();
    let mut lap = (started, cpu_s());
    let mut phase = |name: &'static str| {
        let now = (std::time::Instant::now(), cpu_s());
        phases.push((name, (now.0 - lap.0).as_secs_f64(), now.1 - lap.1));
        lap = now;
    };
    let model_name = options.consistency_model.as_str();
    let forbidden = model::forbidden(model_name).ok_or_else(|| {
        format!(
            "unknown consistency model {model_name:?}; expected one of {}",
            model::MODELS.join(", ")
        )
    })?;
    let order = model::order_of(model_name);
    let mut facts = infer::infer(h);
    phase("infer");
    let mut edges = std::mem::take(&mut facts.edges);
    let data_edges = edges.len();
    if order != model::Order::Data {
        graph::process_edges(h, &facts.committed, &mut edges);
    }
    let realtime = if order == model::Order::Realtime {
        graph::realtime_edges(h, &facts.committed)
    } else {
        graph::Realtime::default()
    };
    let g = graph::Graph::with_realtime(h.txns.len(), &edges, &realtime);
    drop(edges);
    drop(realtime);
    phase("graph");
    let mut budget = options.search_states_max;
    let (cycles, timed_out) = match cycles::find(&g, order, &forbidden, &mut budget) {
        Ok(c) => (c, false),
        Err(c) => (c, true),
    };
    phase("cycles");

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for c in &facts.cases {
        let n = counts.entry(c.kind.to_string()).or_default();
        *n += 1;
        if *n <= EXPLAINED_PER_KIND_MAX {
            anomalies.push(TxnAnomaly {
                kind: c.kind.to_string(),
                forbidden: forbidden.iter().any(|f| f == c.kind),
                txns: c.txns.iter().map(|t| txn_ref(h, *t)).collect(),
                steps: Vec::new(),
                explanation: c.explanation.clone(),
            });
        }
    }
    for c in &cycles {
        let n = counts.entry(c.kind.clone()).or_default();
        *n += 1;
        if *n > EXPLAINED_PER_KIND_MAX {
            continue;
        }
        let len = c.steps.len();
        let steps: Vec<TxnStep> = (0..len)
            .map(|i| {
                let (a, rel) = c.steps[i];
                let b = c.steps[(i + 1) % len].0;
                let (key, explanation) = explain::edge(h, &facts, a, b, rel);
                TxnStep {
                    from: a,
                    to: b,
                    rel: infer::rel_name(rel).to_string(),
                    key,
                    explanation,
                }
            })
            .collect();
        let mut explanation = format!("{} cycle of {} transactions: ", c.kind, len);
        explanation.push_str(
            &steps
                .iter()
                .map(TxnStep::sentence)
                .collect::<Vec<_>>()
                .join("; "),
        );
        anomalies.push(TxnAnomaly {
            kind: c.kind.clone(),
            forbidden: true,
            txns: c.steps.iter().map(|(t, _)| txn_ref(h, *t)).collect(),
            steps,
            explanation,
        });
    }
    phase("explain");
    let anomaly_types: Vec<String> = counts.keys().cloned().collect();
    let bad: Vec<String> = anomaly_types
        .iter()
        .filter(|a| forbidden.contains(a))
        .cloned()
        .collect();
    let (ok, info, fail) = h
        .txns
        .iter()
        .fold((0, 0, 0), |(o, i, f), t| match t.outcome {
            Outcome::Ok => (o + 1, i, f),
            Outcome::Info => (o, i + 1, f),
            Outcome::Fail => (o, i, f + 1),
        });
    let (valid, reason) = if !bad.is_empty() {
        (Validity::Invalid, None)
    } else if timed_out {
        (
            Validity::Unknown,
            Some(format!(
                "the cycle search visited its limit of {} states before deciding",
                options.search_states_max
            )),
        )
    } else if data_edges == 0 && ok > 1 {
        // Elle's empty-transaction-graph: nothing read what anything wrote, so no order
        // between transactions could be checked.
        (
            Validity::Unknown,
            Some("no transaction read another's write: the history cannot tell".into()),
        )
    } else if ok == 0 && !h.txns.is_empty() {
        (
            Validity::Unknown,
            Some("no transaction completed ok: nothing was observed".into()),
        )
    } else {
        (Validity::Valid, None)
    };
    Ok(TxnResult {
        valid,
        consistency_model: model_name.to_string(),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        txns: h.txns.len(),
        ok,
        info,
        fail,
        edges: g.edge_count(),
        not: model::ruled_out(&anomaly_types)
            .into_iter()
            .map(str::to_string)
            .collect(),
        anomaly_types,
        forbidden: bad,
        counts,
        anomalies,
        reason,
    })
}
