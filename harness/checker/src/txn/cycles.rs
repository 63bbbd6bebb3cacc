//! Finding and classifying cycles: for each strongly connected component and each cycle
//! anomaly a model forbids, the shortest cycle of exactly that class through some edge of
//! the component, as Elle's specs define the classes (G0: ww only; G1c: ww and at least one
//! wr; G-single: exactly one rw; G2-item: two or more rw; `-process` / `-realtime`: also
//! using, and needing, process or real-time edges).

use super::graph::{shortest_path, Graph};
use super::infer::{PROCESS, REALTIME, RW, WR, WW};
use super::model::Order;

/// A cycle: txns in order, each with the relation of the edge leaving it to the next.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub kind: String,
    pub steps: Vec<(u32, u8)>,
}

/// Through-edges tried per component and class before settling for the shortest found.
const TRIES_PER_CLASS_MAX: usize = 24;

struct Spec {
    base: &'static str,
    /// The edge the cycle must go through.
    through: u8,
    /// Relations the rest of the cycle may use (besides the variant's order edges).
    rest: u8,
    /// The rest must also use an rw edge (G2-item).
    rest_needs_rw: bool,
    /// No two rw edges may follow each other (G-nonadjacent).
    nonadjacent: bool,
}

const SPECS: [Spec; 5] = [
    Spec {
        base: "G0",
        through: WW,
        rest: WW,
        rest_needs_rw: false,
        nonadjacent: false,
    },
    Spec {
        base: "G1c",
        through: WR,
        rest: WW | WR,
        rest_needs_rw: false,
        nonadjacent: false,
    },
    Spec {
        base: "G-single",
        through: RW,
        rest: WW | WR,
        rest_needs_rw: false,
        nonadjacent: false,
    },
    Spec {
        base: "G-nonadjacent",
        through: RW,
        rest: WW | WR | RW,
        rest_needs_rw: true,
        nonadjacent: true,
    },
    Spec {
        base: "G2-item",
        through: RW,
        rest: WW | WR | RW,
        rest_needs_rw: true,
        nonadjacent: false,
    },
];

/// Whether finding `found` in a component makes `kind` redundant there, as Elle's
/// implications say: G0 implies G1c, G-single implies G-nonadjacent, which implies G2-item,
/// and each class implies its process variant, which implies its real-time one.
fn implied(found: &str, kind: &str) -> bool {
    let split = |k: &str| -> (String, u8) {
        if let Some(b) = k.strip_suffix("-realtime") {
            (b.to_string(), 2)
        } else if let Some(b) = k.strip_suffix("-process") {
            (b.to_string(), 1)
        } else {
            (k.to_string(), 0)
        }
    };
    let ((fb, fv), (kb, kv)) = (split(found), split(kind));
    let base = fb == kb
        || (fb == "G0" && kb == "G1c")
        || (fb == "G-single" && (kb == "G-nonadjacent" || kb == "G2-item"))
        || (fb == "G-nonadjacent" && kb == "G2-item");
    base && fv <= kv
}

/// Searches every component for the forbidden cycle classes. `budget` bounds the states
/// visited in all; `Err` carries the cycles found before it ran out.
pub fn find(
    g: &Graph,
    order: Order,
    forbidden: &[String],
    budget: &mut u64,
) -> Result<Vec<Cycle>, Vec<Cycle>> {
    let wanted = |name: &str| forbidden.iter().any(|f| f == name);
    let variant = match order {
        Order::Data => None,
        Order::Process => Some((PROCESS, "process")),
        Order::Realtime => Some((REALTIME, "realtime")),
    };
    let mut mask = WW | WR | RW;
    if let Some((bit, _)) = variant {
        mask |= bit;
    }
    let (comp, comps) = g.sccs(mask);
    let mut found = Vec::new();
    for (id, members) in comps.iter().enumerate() {
        let id = id as u32;
        // Classes found in this component: a variant is not reported where its base (or,
        // for real time, its process variant) already is, since the base implies it.
        let mut here: Vec<String> = Vec::new();
        for spec in &SPECS {
            let passes: Vec<(u8, String)> = std::iter::once((0u8, spec.base.to_string()))
                .chain(variant.map(|(bit, name)| (bit, format!("{}-{name}", spec.base))))
                .collect();
            for (extra, kind) in passes {
                if !wanted(&kind) || here.iter().any(|f| implied(f, &kind)) {
                    continue;
                }
                match search(g, &comp, id, members, spec, extra, budget) {
                    Some(steps) => {
                        here.push(kind.clone());
                        found.push(Cycle { kind, steps })
                    }
                    None if *budget == 0 => return Err(found),
                    None => {}
                }
            }
        }
    }
    Ok(found)
}

/// The shortest cycle of one class in one component, trying a bounded number of
/// through-edges.
fn search(
    g: &Graph,
    comp: &[u32],
    id: u32,
    members: &[u32],
    spec: &Spec,
    extra: u8,
    budget: &mut u64,
) -> Option<Vec<(u32, u8)>> {
    let allowed = spec.rest | extra;
    let mut need: Vec<u8> = Vec::new();
    if spec.rest_needs_rw {
        need.push(RW);
    }
    if extra != 0 {
        need.push(extra);
    }
    let mut best: Option<Vec<(u32, u8)>> = None;
    let mut tries = 0;
    'members: for &a in members {
        for (b, rels) in g.out(a) {
            if comp[b as usize] != id || rels & spec.through == 0 {
                continue;
            }
            tries += 1;
            if let Some(path) =
                shortest_path(g, comp, id, b, a, allowed, &need, spec.nonadjacent, budget)
            {
                let mut steps = vec![(a, spec.through)];
                // path: (txn reached, relation used to reach it); the last reaches `a`.
                let mut at = b;
                for &(next, rel) in &path {
                    steps.push((at, rel));
                    at = next;
                }
                // The state search may walk through a txn twice to collect a needed
                // relation; such a walk is not a cycle of this class.
                let mut seen: Vec<u32> = steps.iter().map(|s| s.0).collect();
                seen.sort_unstable();
                seen.dedup();
                let simple = seen.len() == steps.len();
                if simple && best.as_ref().is_none_or(|s| steps.len() < s.len()) {
                    best = Some(steps);
                }
                if best.as_ref().is_some_and(|s| s.len() <= 2) {
                    break 'members;
                }
            }
            if tries >= TRIES_PER_CLASS_MAX || *budget == 0 {
                break 'members;
            }
        }
    }
    best
}
