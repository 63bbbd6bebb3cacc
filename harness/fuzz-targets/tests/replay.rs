//! On stable Rust, every fuzz target replays its corpus (`fuzz/corpus/<target>/`, which
//! keeps every input that ever crashed one) and then a bounded run of random mutations of
//! it, from a fixed seed so a failure reproduces. The coverage-guided runs are in fuzz/.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Mutated inputs tried per target: a few seconds of work each in release.
const MUTATIONS_PER_TARGET: usize = 20_000;
const SEED: u64 = 0x5eed_f022;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// One of libFuzzer's simple mutations: flip, insert, erase, duplicate or splice bytes,
/// or put an interesting number in.
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..6) {
            0 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 => out.insert(at, rng.random()),
            2 if at < out.len() => {
                let end = rng.random_range(at..=out.len());
                out.drain(at..end);
            }
            3 if at < out.len() => {
                let end = rng.random_range(at..=out.len().min(at + 64));
                let copy = out[at..end].to_vec();
                let to = rng.random_range(0..=out.len());
                out.splice(to..to, copy);
            }
            4 if !other.is_empty() => {
                let from = rng.random_range(0..other.len());
                let end = rng.random_range(from..=other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let n: &[u8] = match rng.random_range(0..6) {
                    0 => b"18446744073709551615",
                    1 => b"-9223372036854775808",
                    2 => b"\xff\xff\xff\xff",
                    3 => b"1e300",
                    4 => b"[[[[[[[[[[[[[[[[",
                    _ => b"\x00",
                };
                out.splice(at..at, n.iter().copied());
            }
        }
    }
    out
}

#[test]
fn every_target_survives_its_corpus_and_random_mutations_of_it() {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    for (name, target) in faultline_fuzz_targets::TARGETS {
        let inputs = corpus(name);
        assert!(!inputs.is_empty(), "{name} has no corpus");
        for input in &inputs {
            target(input);
        }
        for _ in 0..MUTATIONS_PER_TARGET {
            let a = &inputs[rng.random_range(0..inputs.len())];
            let b = &inputs[rng.random_range(0..inputs.len())];
            target(&mutate(&mut rng, a, b));
        }
    }
}
