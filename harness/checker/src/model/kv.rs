//! `kv`: a map of string registers with get/put/append (Porcupine's kv model). With
//! `by_key` each key is checked apart; `kv-map` checks the whole map as one state.

use super::{Model, Prepared};
use crate::history::{Key, Op, OpType};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// A string with its hash computed once: kv states hold long appended strings, and the
/// search hashes states often. The hash is polynomial (`h(a+b) = h(a)·B^|b| + h(b)`), so an
/// append derives it from its parts in O(1) instead of rehashing the whole new string.
#[derive(Debug, Clone)]
pub struct HStr {
    hash: u64,
    /// B^len, wrapping: what an append multiplies the left part's hash by.
    pow: u64,
    text: Arc<str>,
}

/// Odd, so powers of it never reach zero modulo 2^64.
const POLY_BASE: u64 = 0x100_0000_01B3;

impl HStr {
    pub fn new(text: &str) -> Self {
        let (mut hash, mut pow) = (0u64, 1u64);
        for &b in text.as_bytes() {
            hash = hash.wrapping_mul(POLY_BASE).wrapping_add(u64::from(b) + 1);
            pow = pow.wrapping_mul(POLY_BASE);
        }
        HStr {
            hash,
            pow,
            text: text.into(),
        }
    }

    /// `self` followed by `tail`, with the hash combined rather than recomputed.
    fn append(&self, tail: &HStr) -> Self {
        let mut s = String::with_capacity(self.text.len() + tail.text.len());
        s.push_str(&self.text);
        s.push_str(&tail.text);
        HStr {
            hash: self.hash.wrapping_mul(tail.pow).wrapping_add(tail.hash),
            pow: self.pow.wrapping_mul(tail.pow),
            text: s.into(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for HStr {
    fn eq(&self, other: &Self) -> bool {
        // The hash only rules strings out; equal hashes still compare the text.
        self.hash == other.hash
            && self.text.len() == other.text.len()
            && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}
impl Eq for HStr {}
impl Hash for HStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A polynomial hash's low bits depend only on the bytes' low bits, and hash tables
        // index by low bits: mix it fully first (splitmix64's finaliser).
        let mut z = self.hash;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        state.write_u64(z ^ (z >> 31));
    }
}

/// The value a get returned, with the hash of each of its prefixes: the search asks
/// whether a key's string is still a prefix of it at every step, and a hash lookup
/// answers that without comparing text (a mismatch proves "not a prefix").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    value: HStr,
    /// `prefixes[k]`: `HStr::new(&value[..k]).hash`, byte-wise.
    prefixes: Box<[u64]>,
}

impl Read {
    pub fn new(text: &str) -> Self {
        let mut prefixes = Vec::with_capacity(text.len() + 1);
        let mut hash = 0u64;
        prefixes.push(hash);
        for &b in text.as_bytes() {
            hash = hash.wrapping_mul(POLY_BASE).wrapping_add(u64::from(b) + 1);
            prefixes.push(hash);
        }
        Read {
            value: HStr::new(text),
            prefixes: prefixes.into(),
        }
    }

    pub fn value(&self) -> &HStr {
        &self.value
    }

    /// Whether `s` may be a prefix of the value: false proves it is not (equal strings
    /// hash alike); true may, very rarely, be a hash collision.
    fn may_extend(&self, s: &HStr) -> bool {
        self.prefixes
            .get(s.text.len())
            .is_some_and(|&h| h == s.hash)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvAction {
    /// `None`: unknown result.
    Get(Option<Read>),
    Put(HStr),
    Append(HStr),
}

/// One kv op on the key in slot `slot` of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvOp {
    pub slot: u32,
    pub action: KvAction,
}

/// The kv model. The state is one string per key slot; slots are handed out as keys are
/// first seen (with `by_key` every op uses slot 0).
#[derive(Debug)]
pub struct KvModel {
    by_key: bool,
    initial: HStr,
    slots: Mutex<Vec<Key>>,
}

impl KvModel {
    /// `initial`: the value of every key before any write (Porcupine: "").
    pub fn new(by_key: bool, initial: &str) -> Self {
        KvModel {
            by_key,
            initial: HStr::new(initial),
            slots: Mutex::new(Vec::new()),
        }
    }

    fn slot(&self, key: Option<&Key>) -> u32 {
        if self.by_key {
            return 0;
        }
        let key = key.cloned().unwrap_or(Key::Str(String::new()));
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.iter().position(|k| *k == key) {
            Some(i) => i as u32,
            None => {
                slots.push(key);
                (slots.len() - 1) as u32
            }
        }
    }
}

fn string_of<'v>(v: &'v serde_json::Value, what: &str) -> Result<&'v str, String> {
    match v {
        serde_json::Value::String(s) => Ok(s),
        other => Err(format!("expected a string {what}, got {other}")),
    }
}

impl Model for KvModel {
    type Op = KvOp;
    type State = Vec<HStr>;

    fn name(&self) -> String {
        if self.by_key { "kv" } else { "kv-map" }.to_string()
    }

    fn by_key(&self) -> bool {
        self.by_key
    }

    fn prepare(&self, invoke: &Op, completion: Option<&Op>) -> Result<Prepared<KvOp>, String> {
        let kind = completion.map(|c| c.kind).unwrap_or(OpType::Info);
        if kind == OpType::Fail {
            return Ok(Prepared::Skip);
        }
        let action = match (invoke.f.as_str(), kind) {
            ("get" | "read", OpType::Ok) => {
                let c = completion.expect("ok has a completion");
                KvAction::Get(Some(Read::new(string_of(&c.value, "get result")?)))
            }
            ("get" | "read", _) => return Ok(Prepared::Skip),
            ("put" | "write", _) => {
                KvAction::Put(HStr::new(string_of(&invoke.value, "put value")?))
            }
            ("append", _) => KvAction::Append(HStr::new(string_of(&invoke.value, "append value")?)),
            (other, _) => return Err(format!("expected f get, put or append, got {other:?}")),
        };
        let op = KvOp {
            slot: self.slot(invoke.key.as_ref()),
            action,
        };
        Ok(if kind == OpType::Ok {
            Prepared::Known(op)
        } else {
            Prepared::Unknown(op)
        })
    }

    fn init(&self) -> Vec<HStr> {
        Vec::new()
    }

    fn step(&self, state: &Vec<HStr>, op: &KvOp) -> Option<Vec<HStr>> {
        let slot = op.slot as usize;
        let current = state.get(slot).unwrap_or(&self.initial);
        let new = match &op.action {
            KvAction::Get(None) => return Some(state.clone()),
            KvAction::Get(Some(v)) => return (v.value == *current).then(|| state.clone()),
            KvAction::Put(v) => v.clone(),
            KvAction::Append(v) => current.append(v),
        };
        let mut next = state.clone();
        if next.len() <= slot {
            next.resize(slot + 1, self.initial.clone());
        }
        next[slot] = new;
        Some(next)
    }

    fn is_read_only(&self, op: &KvOp) -> bool {
        matches!(op.action, KvAction::Get(_))
    }

    fn grows_without_end(&self, op: &KvOp) -> bool {
        matches!(&op.action, KvAction::Append(v) if !v.text.is_empty())
    }

    fn bounds_future(&self, op: &KvOp) -> bool {
        matches!(op.action, KvAction::Get(Some(_)))
    }

    fn resets(&self, op: &KvOp) -> bool {
        matches!(op.action, KvAction::Put(_))
    }

    fn may_become_legal(&self, state: &Vec<HStr>, op: &KvOp, resets: &[&KvOp]) -> bool {
        // Appends only ever extend a key's string, so a get can still read `v` only if the
        // key's string is a prefix of `v` now, or a put on that key may still write one.
        let KvAction::Get(Some(v)) = &op.action else {
            return true;
        };
        let extends = |s: &HStr| v.may_extend(s);
        let current = state.get(op.slot as usize).unwrap_or(&self.initial);
        extends(current)
            || resets.iter().any(|r| match &r.action {
                // A put on another key leaves this one as it is.
                KvAction::Put(w) => r.slot == op.slot && extends(w),
                _ => true,
            })
    }

    fn state_json(&self, state: &Vec<HStr>) -> serde_json::Value {
        if self.by_key {
            let v = state.first().unwrap_or(&self.initial);
            return serde_json::Value::String(v.text.to_string());
        }
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = serde_json::Map::new();
        for (i, v) in state.iter().enumerate() {
            let name = slots.get(i).map(|k| k.to_string()).unwrap_or_default();
            map.insert(name, serde_json::Value::String(v.text.to_string()));
        }
        serde_json::Value::Object(map)
    }

    fn state_bytes(&self, state: &Vec<HStr>) -> usize {
        // Strings made by append are owned by this state; shared ones are counted once
        // per state too, which overestimates and so errs on the safe side.
        std::mem::size_of::<Vec<HStr>>()
            + state
                .iter()
                .map(|s| std::mem::size_of::<HStr>() + s.text.len() + 16)
                .sum::<usize>()
    }

    fn why_illegal(&self, state: &Vec<HStr>, op: &KvOp) -> String {
        let current = state.get(op.slot as usize).unwrap_or(&self.initial);
        match &op.action {
            KvAction::Get(Some(v)) => {
                format!(
                    "it read {:?}, but the key held {:?}",
                    v.value.as_str(),
                    current.as_str()
                )
            }
            other => format!("{other:?} is not legal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_concatenates_and_get_compares() {
        let m = KvModel::new(true, "");
        let s0 = m.init();
        let put = KvOp {
            slot: 0,
            action: KvAction::Put(HStr::new("a")),
        };
        let app = KvOp {
            slot: 0,
            action: KvAction::Append(HStr::new("b")),
        };
        let s1 = m.step(&s0, &put).unwrap();
        let s2 = m.step(&s1, &app).unwrap();
        let get = |v: &str| KvOp {
            slot: 0,
            action: KvAction::Get(Some(Read::new(v))),
        };
        assert!(m.step(&s2, &get("ab")).is_some());
        assert!(m.step(&s2, &get("a")).is_none());
        assert!(m.step(&s0, &get("")).is_some());
        assert_eq!(m.state_json(&s2), serde_json::json!("ab"));
    }

    #[test]
    fn append_hash_matches_hash_of_whole_text() {
        let parts = ["", "x 6 0 y", "a", "", "x 18 12 y", "\u{e9}t\u{e9}"];
        let mut acc = HStr::new("");
        let mut text = String::new();
        for p in parts {
            acc = acc.append(&HStr::new(p));
            text.push_str(p);
            let whole = HStr::new(&text);
            assert_eq!((acc.hash, acc.pow), (whole.hash, whole.pow), "{text:?}");
            assert_eq!(acc, whole);
        }
        // Different split points, different strings: equal only when the text is.
        let ab_c = HStr::new("ab").append(&HStr::new("c"));
        let a_bc = HStr::new("a").append(&HStr::new("bc"));
        assert_eq!(ab_c, a_bc);
        assert_ne!(ab_c, HStr::new("acb"));
    }

    #[test]
    fn equal_hashes_still_compare_the_text() {
        let a = HStr::new("abc");
        let mut forged = HStr::new("xyz");
        forged.hash = a.hash;
        forged.pow = a.pow;
        assert_ne!(a, forged);
        assert_eq!(a, HStr::new("abc"));
    }

    #[test]
    fn a_get_is_doomed_once_appends_leave_its_value_unless_a_put_may_come() {
        let m = KvModel::new(false, "");
        let op = |slot, action| KvOp { slot, action };
        let get_ab = op(0, KvAction::Get(Some(Read::new("ab"))));
        let ac = m
            .step(&m.init(), &op(0, KvAction::Append(HStr::new("ac"))))
            .unwrap();
        let a = m
            .step(&m.init(), &op(0, KvAction::Append(HStr::new("a"))))
            .unwrap();
        assert!(
            m.may_become_legal(&a, &get_ab, &[]),
            "\"a\" may still become \"ab\""
        );
        assert!(!m.may_become_legal(&ac, &get_ab, &[]));
        let put_a = op(0, KvAction::Put(HStr::new("a")));
        let put_x = op(0, KvAction::Put(HStr::new("x")));
        let put_a_elsewhere = op(1, KvAction::Put(HStr::new("a")));
        assert!(m.may_become_legal(&ac, &get_ab, &[&put_x, &put_a]));
        assert!(!m.may_become_legal(&ac, &get_ab, &[&put_x, &put_a_elsewhere]));
        assert!(m.resets(&put_a) && !m.resets(&get_ab));
        let read = Read::new("ab");
        for (s, prefix) in [
            ("", true),
            ("a", true),
            ("ab", true),
            ("b", false),
            ("abc", false),
        ] {
            assert_eq!(read.may_extend(&HStr::new(s)), prefix, "{s:?}");
        }
        let built = HStr::new("")
            .append(&HStr::new("a"))
            .append(&HStr::new("b"));
        assert!(
            read.may_extend(&built),
            "hashes of appended strings match the prefixes"
        );
        assert!(m.bounds_future(&get_ab) && !m.bounds_future(&put_a));
    }

    #[test]
    fn map_mode_keeps_keys_apart() {
        let m = KvModel::new(false, "");
        let a = m.slot(Some(&Key::Str("a".into())));
        let b = m.slot(Some(&Key::Str("b".into())));
        assert_ne!(a, b);
        let s = m
            .step(
                &m.init(),
                &KvOp {
                    slot: b,
                    action: KvAction::Put(HStr::new("x")),
                },
            )
            .unwrap();
        assert!(m
            .step(
                &s,
                &KvOp {
                    slot: a,
                    action: KvAction::Get(Some(Read::new("")))
                }
            )
            .is_some());
        assert!(m
            .step(
                &s,
                &KvOp {
                    slot: b,
                    action: KvAction::Get(Some(Read::new("")))
                }
            )
            .is_none());
        assert_eq!(m.state_json(&s), serde_json::json!({"a": "", "b": "x"}));
    }
}
