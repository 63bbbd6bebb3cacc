//! bincode encoding with a byte limit, so a hostile length prefix cannot make us allocate.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit)
}

/// Encodes `value` (never fails for the plain data types the nodes use).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    options(u64::MAX)
        .serialize(value)
        .expect("bincode encodes plain data")
}

/// Decodes `bytes`, refusing to allocate more than the input could describe.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    options(bytes.len() as u64 * 8 + 1024).deserialize(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_hostile_lengths() {
        let v: Vec<(u64, String)> = vec![(1, "a".into()), (2, "bc".into())];
        assert_eq!(decode::<Vec<(u64, String)>>(&encode(&v)).unwrap(), v);
        // A varint length claiming 2^60 elements must be refused, not allocated.
        let hostile = [0xff, 0, 0, 0, 0, 0, 0, 0x10, 0];
        assert!(decode::<Vec<u64>>(&hostile).is_err());
        assert!(decode::<(u64, String)>(b"\x05\xfb\xff").is_err());
    }
}
