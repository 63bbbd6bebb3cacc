//! The `lock-set` workload (Jepsen's lock-guarded set), generic over lock services: each
//! `add` acquires the key's lock, reads the set stored in the system, adds its element and
//! writes the whole set back without a compare, then releases. A final `read` per key must
//! hold every acknowledged add (`faultline_checker::set`); lost adds are the visible damage
//! of two holders. With fencing, the write is guarded by the grant's token and a stale
//! holder's write is refused, so the same faults must leave the set whole.
//!
//! A lock service takes part by implementing [`GuardedSet`] for one client process;
//! [`LockSetFactory`] turns such processes into the run's clients.

use async_trait::async_trait;
use faultline_checker::history::Key;
use faultline_core::client::{Client, ClientFactory, Completion};
use faultline_core::generator::{Invocation, OpGenerator};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};

/// The lock of a key: the lock workload's name for it, so both workloads look alike.
pub fn lock_name(key: &Key) -> String {
    crate::lock::lock_name(key)
}

/// Where a key's set is stored in the system.
pub fn set_name(key: &Key) -> String {
    match key {
        Key::Int(k) => format!("set-{k}"),
        Key::Str(s) => format!("set-{s}"),
    }
}

/// The set's stored form: a JSON array of integers, ascending.
pub fn encode_set(elements: &[i64]) -> Vec<u8> {
    let mut sorted = elements.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    serde_json::to_vec(&sorted).expect("a list of integers serialises")
}

/// The stored form back; an absent value is the empty set. A value that is not a list of
/// integers is an error naming what was found, never a panic.
pub fn decode_set(bytes: Option<&[u8]>) -> Result<Vec<i64>, String> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    serde_json::from_slice::<Vec<i64>>(bytes).map_err(|e| {
        format!(
            "the stored set is not a JSON list of integers ({e}): {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        )
    })
}

/// How one step against the lock service or its store ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// It certainly did not take effect (refused, not granted, compare failed).
    Definite(String),
    /// Unknown: a timeout or lost connection; it may have taken effect.
    Indefinite(String),
}

impl StepError {
    /// A client's `fail` or `info` as a step's error (`info` stays unknown).
    pub fn from_completion(done: Completion) -> StepError {
        let why = done.error.unwrap_or_default();
        match done.kind {
            faultline_checker::history::OpType::Info => StepError::Indefinite(why),
            _ => StepError::Definite(why),
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Definite(s) | StepError::Indefinite(s) => f.write_str(s),
        }
    }
}

/// A lock grant as the workload sees it: the fencing token where the service issues one,
/// and the service's own handle to release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token: Option<i64>,
    /// Whatever the service needs to release (or fence with) this grant: a lock key, a
    /// random value.
    pub handle: Vec<u8>,
}

/// One client process of a lock service that also stores the set (or reaches a store).
/// Implementations classify their own errors; they must not panic on anything the
/// service answers.
#[async_trait]
pub trait GuardedSet: Send {
    /// Acquires `lock`, waiting at most the service's own bound.
    async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError>;
    /// Releases a grant of `lock`. Errors here never undo an add that was written.
    async fn release(&mut self, lock: &str, grant: &Grant) -> Result<(), StepError>;
    /// Reads the set named `set` (empty when absent).
    async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError>;
    /// Writes the whole set. With `fence`, only while that grant still holds the lock (the
    /// service's token check); a refused write is `Definite`.
    async fn write(
        &mut self,
        set: &str,
        elements: &[i64],
        fence: Option<(&str, &Grant)>,
    ) -> Result<(), StepError>;
    /// Whether this service can fence writes with its grants (`--fencing` needs it).
    fn can_fence(&self) -> bool;
    /// The host this process talks to, recorded with each op.
    fn node(&self) -> Option<&str>;
}

/// Opens one [`GuardedSet`] process per client process.
pub trait GuardedSetFactory: Send + Sync {
    fn open(&self, worker: usize, process: u64) -> anyhow::Result<Box<dyn GuardedSet>>;
}

/// Adds unique elements (one counter for the whole run, so every element is unique across
/// keys too) and reads each used key's set at the end.
#[derive(Debug, Default)]
pub struct LockSetGenerator {
    next: AtomicI64,
}

impl OpGenerator for LockSetGenerator {
    fn next_op(&self, key: &Key, _rng: &mut ChaCha8Rng) -> Invocation {
        Invocation {
            f: "add",
            key: Some(key.clone()),
            value: json!(self.next.fetch_add(1, Ordering::Relaxed)),
        }
    }

    fn final_op(&self, key: &Key) -> Option<Invocation> {
        Some(Invocation {
            f: "read",
            key: Some(key.clone()),
            value: Value::Null,
        })
    }
}

/// The run's clients: every process of the lock service, driven through the add's steps.
pub struct LockSetFactory<F> {
    inner: F,
    fencing: bool,
}

impl<F: GuardedSetFactory> LockSetFactory<F> {
    /// `fencing`: guard every write with the grant's token.
    pub fn new(inner: F, fencing: bool) -> Self {
        LockSetFactory { inner, fencing }
    }
}

impl<F: GuardedSetFactory> ClientFactory for LockSetFactory<F> {
    fn open(&self, worker: usize, process: u64) -> anyhow::Result<Box<dyn Client>> {
        let service = self.inner.open(worker, process)?;
        anyhow::ensure!(
            !self.fencing || service.can_fence(),
            "this lock service issues no fencing token, so --fencing cannot guard its writes"
        );
        Ok(Box::new(LockSetClient {
            service,
            fencing: self.fencing,
        }))
    }
}

/// One client process of the workload.
pub struct LockSetClient {
    service: Box<dyn GuardedSet>,
    fencing: bool,
}

fn element_of(op: &Invocation) -> Option<i64> {
    op.value.as_i64()
}

impl LockSetClient {
    /// The add's outcome is the write's: nothing before the write can have added the
    /// element, so every earlier failure (even an unknown acquire) is `fail`.
    async fn add(&mut self, key: &Key, element: i64) -> Completion {
        let (lock, set) = (lock_name(key), set_name(key));
        let grant = match self.service.acquire(&lock).await {
            Ok(grant) => grant,
            Err(e) => return Completion::fail(format!("acquiring {lock}: {e}")),
        };
        let written = match self.service.read(&set).await {
            Err(e) => Err(StepError::Definite(format!("reading {set}: {e}"))),
            Ok(mut elements) => {
                elements.push(element);
                let fence = self.fencing.then_some((lock.as_str(), &grant));
                self.service
                    .write(&set, &elements, fence)
                    .await
                    .map_err(|e| match e {
                        StepError::Definite(s) => {
                            StepError::Definite(format!("writing {set}: {s}"))
                        }
                        StepError::Indefinite(s) => {
                            StepError::Indefinite(format!("writing {set}: {s}"))
                        }
                    })
            }
        };
        // A release that fails leaves the lock to its lease; the add's fate is the write's.
        let released = self.service.release(&lock, &grant).await;
        if let Err(e) = &released {
            tracing::debug!("releasing {lock}: {e}");
        }
        let token = grant.token.map_or(Value::Null, |t| json!(t));
        match written {
            Ok(()) => Completion::ok(Some(json!({"element": element, "token": token}))),
            Err(StepError::Definite(s)) => Completion::fail(s),
            Err(StepError::Indefinite(s)) => Completion::info(s),
        }
    }
}

#[async_trait]
impl Client for LockSetClient {
    async fn invoke(&mut self, op: &Invocation) -> Completion {
        let Some(key) = &op.key else {
            return Completion::fail("a lock-set op needs a key");
        };
        match (op.f, element_of(op)) {
            ("add", Some(element)) => self.add(key, element).await,
            ("read", _) => match self.service.read(&set_name(key)).await {
                Ok(elements) => Completion::ok(Some(json!(elements))),
                // A read changes nothing, so even an unknown one certainly did not happen.
                Err(e) => Completion::fail(e.to_string()),
            },
            (f, _) => Completion::fail(format!(
                "the lock-set client has no op {f:?} with value {}",
                op.value
            )),
        }
    }

    fn node(&self) -> Option<&str> {
        self.service.node()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_core::generator::worker_rng;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// A lock service in memory that grants every acquire a fresh token (as if every older
    /// lease had just expired) and fences writes on the newest token.
    #[derive(Default, Clone)]
    struct Memory {
        sets: Arc<Mutex<HashMap<String, Vec<i64>>>>,
        tokens: Arc<Mutex<HashMap<String, i64>>>,
    }

    struct MemoryProcess(Memory);

    #[async_trait]
    impl GuardedSet for MemoryProcess {
        async fn acquire(&mut self, lock: &str) -> Result<Grant, StepError> {
            let mut tokens = self.0.tokens.lock().unwrap();
            let t = tokens.entry(lock.into()).or_insert(0);
            *t += 1;
            Ok(Grant {
                token: Some(*t),
                handle: Vec::new(),
            })
        }
        async fn release(&mut self, _lock: &str, _grant: &Grant) -> Result<(), StepError> {
            Ok(())
        }
        async fn read(&mut self, set: &str) -> Result<Vec<i64>, StepError> {
            Ok(self
                .0
                .sets
                .lock()
                .unwrap()
                .get(set)
                .cloned()
                .unwrap_or_default())
        }
        async fn write(
            &mut self,
            set: &str,
            elements: &[i64],
            fence: Option<(&str, &Grant)>,
        ) -> Result<(), StepError> {
            if let Some((lock, grant)) = fence {
                if self.0.tokens.lock().unwrap().get(lock).copied() != grant.token {
                    return Err(StepError::Definite("fenced: a newer grant exists".into()));
                }
            }
            self.0
                .sets
                .lock()
                .unwrap()
                .insert(set.into(), elements.to_vec());
            Ok(())
        }
        fn can_fence(&self) -> bool {
            true
        }
        fn node(&self) -> Option<&str> {
            Some("n1")
        }
    }

    #[test]
    fn the_set_round_trips_and_bad_bytes_are_errors() {
        assert_eq!(decode_set(Some(&encode_set(&[3, 1, 3]))), Ok(vec![1, 3]));
        assert_eq!(decode_set(None), Ok(vec![]));
        let err = decode_set(Some(b"{\"x\":1}")).unwrap_err();
        assert!(err.contains("not a JSON list"), "{err}");
    }

    #[test]
    fn elements_are_unique_and_every_key_is_read_at_the_end() {
        let g = LockSetGenerator::default();
        let mut rng = worker_rng(1, 0);
        let a = g.next_op(&Key::Int(0), &mut rng);
        let b = g.next_op(&Key::Int(1), &mut rng);
        assert_eq!((a.f, a.value.clone()), ("add", json!(0)));
        assert_eq!(b.value, json!(1));
        assert_eq!(g.final_op(&Key::Int(1)).unwrap().f, "read");
    }

    #[tokio::test]
    async fn an_add_is_read_back_and_a_stale_fenced_write_fails() {
        let memory = Memory::default();
        let mut a = LockSetClient {
            service: Box::new(MemoryProcess(memory.clone())),
            fencing: true,
        };
        let key = Key::Int(0);
        let done = a.add(&key, 7).await;
        assert_eq!(done.kind, faultline_checker::history::OpType::Ok);
        assert_eq!(done.value, Some(json!({"element": 7, "token": 1})));
        // A stale holder: its grant is older than the lock's newest.
        let stale = Grant {
            token: Some(1),
            handle: Vec::new(),
        };
        memory.tokens.lock().unwrap().insert("lock-0".into(), 5);
        let mut p = MemoryProcess(memory.clone());
        let refused = p.write("set-0", &[1], Some(("lock-0", &stale))).await;
        assert!(matches!(refused, Err(StepError::Definite(_))));
        let read = a
            .invoke(&Invocation {
                f: "read",
                key: Some(key),
                value: Value::Null,
            })
            .await;
        assert_eq!(read.value, Some(json!([7])));
    }
}
