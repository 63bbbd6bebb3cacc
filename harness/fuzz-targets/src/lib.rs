//! The fuzz targets: one function per parser of bytes faultline takes from outside (history
//! files, peer messages, client protocols). Each must return normally on every input; a
//! panic is a bug. Where a parser accepts, the target also checks what must hold of what
//! it accepted (re-encoding round-trips, propagated writes parse), so the fuzzer finds
//! wrong answers as well as crashes. `fuzz/` runs them under libFuzzer; the tests replay
//! the corpus in `fuzz/corpus/<target>/` and mutate it for a bounded time on stable.

use faultline_checker::import::{self, Format};
use faultline_nodes_common::{api, codec, records};
use faultline_redis_lock::{cmd::Command, db::Db, resp};
use faultline_workloads::external::ExternalSystem;
use faultline_workloads::system::{System, SystemRequest};
use std::path::Path;

/// One fuzz target: it must never panic, whatever the bytes.
pub type Target = fn(&[u8]);

/// Every target by name, as the fuzz/ binaries and the corpus folders are named.
pub const TARGETS: &[(&str, Target)] = &[
    ("history_jsonl", history_jsonl),
    ("knossos_edn", knossos_edn),
    ("porcupine", porcupine),
    ("resp", resp_frames),
    ("peer_wire", peer_wire),
    ("http_bodies", http_bodies),
    ("external_toml", external_toml),
    ("campaign_toml", campaign_toml),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// faultline's history.jsonl, through the one streaming reader `check` and `report` use.
pub fn history_jsonl(data: &[u8]) {
    let reader = faultline_checker::history::HistoryReader::new(data, "fuzz.jsonl");
    let ops: Vec<_> = reader.take_while(Result::is_ok).flatten().collect();
    // What was read is written back and read again as the same ops.
    let mut out = Vec::new();
    faultline_checker::history::write_jsonl(&mut out, &ops).expect("writing to memory");
    let again: Vec<_> = faultline_checker::history::HistoryReader::new(out.as_slice(), "again")
        .collect::<Result<_, _>>()
        .expect("a history faultline wrote reads back");
    assert_eq!(again.len(), ops.len());
}

/// Knossos (and Elle) EDN histories.
pub fn knossos_edn(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = import::parse(t, Format::KnossosEdn, "fuzz.edn");
        let _ = import::parse(t, Format::ElleEdn, "fuzz.edn");
    }
}

/// Porcupine's etcd (JSON lines) and kv (EDN lines) logs, and the format guess.
pub fn porcupine(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = import::parse(t, Format::PorcupineEtcd, "fuzz.log");
        let _ = import::parse(t, Format::PorcupineKv, "fuzz.log");
        let _ = import::guess_format(t);
    }
}

/// RESP frames off a redis-lock socket, the commands they carry, and what the keyspace
/// makes of them: every write it propagates must parse on a replica. The bytes are also
/// fed a byte at a time and in 5-byte reads: the check resumes where the last read left
/// off, and must decide as a check of all of them at once.
pub fn resp_frames(data: &[u8]) {
    let (frames, error, _) = resp::read_in_pieces(data, data.len());
    for piece in [1, 5] {
        let (f, e, _) = resp::read_in_pieces(data, piece);
        assert_eq!((&f, &e), (&frames, &error), "read {piece} bytes at a time");
    }
    let mut db = Db::new();
    for frame in frames {
        let wire = frame.to_bytes();
        let (again, used) = resp::parse(&wire).expect("an encoded frame parses");
        assert_eq!(used, wire.len());
        assert_eq!(again, frame);
        if let Ok(cmd) = Command::from_frame(frame) {
            for propagated in db.apply(&cmd, 1_700_000_000_000).propagate {
                Command::from_frame(propagated).expect("a replica parses what is propagated");
            }
        }
    }
}

/// What nodes read from peers and from their own disk: Raft and Paxos messages, WAL
/// records. A message that decodes re-encodes to something that decodes to it.
pub fn peer_wire(data: &[u8]) {
    if let Ok(m) = codec::decode::<faultline_raft::message::Message>(data) {
        assert_eq!(
            codec::decode::<faultline_raft::message::Message>(&codec::encode(&m)).ok(),
            Some(m)
        );
    }
    if let Ok(m) = codec::decode::<faultline_paxos::core::Message>(data) {
        assert_eq!(
            codec::decode::<faultline_paxos::core::Message>(&codec::encode(&m)).ok(),
            Some(m)
        );
    }
    let (records, good) = records::parse(data);
    assert!(good <= data.len());
    assert!(records.iter().map(|r| r.len()).sum::<usize>() <= good);
}

/// The nodes' HTTP/JSON request bodies, and the value canonicalisation they go through.
pub fn http_bodies(data: &[u8]) {
    if let Ok(r) = api::parse_body::<api::WriteRequest>(data) {
        let _ = api::validate_key(&r.key);
        if let Ok(text) = api::encode_value(&r.value) {
            assert_eq!(api::decode_value(Some(&text)), r.value);
        }
    }
    let _ = api::parse_body::<api::ReadRequest>(data);
    if let Ok(r) = api::parse_body::<api::CasRequest>(data) {
        let _ = api::validate_key(&r.key);
    }
}

/// An external system's TOML file (`--db external:FILE.toml`): every refusal names the
/// file, and a system it accepts answers what the registry asks of it.
pub fn external_toml(data: &[u8]) {
    let Some(t) = text(data) else { return };
    match ExternalSystem::parse(t, Path::new("systems/fuzz.toml")) {
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(msg.contains("systems/fuzz.toml"), "names the file: {msg}");
        }
        Ok(system) => {
            assert!(!system.name().is_empty());
            assert!(!system.workloads().is_empty());
            let _ = (system.description(), system.bugs());
            let _ = system.capabilities(&SystemRequest::default());
        }
    }
}

/// A campaign file (`faultline campaign FILE.toml`), parsed and planned: every refusal
/// names the file, and every planned run's name is a safe folder name.
pub fn campaign_toml(data: &[u8]) {
    use faultline::campaign_file;
    let Some(t) = text(data) else { return };
    let campaign = match campaign_file::parse(t, Path::new("campaigns/fuzz.toml")) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(msg.contains("campaigns/fuzz.toml"), "names the file: {msg}");
            return;
        }
    };
    if let Ok(runs) = campaign_file::plan(&campaign, 7) {
        for run in runs {
            assert!(
                !run.name.is_empty()
                    && run
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "{:?} is not a safe folder name",
                run.name
            );
        }
    }
}
