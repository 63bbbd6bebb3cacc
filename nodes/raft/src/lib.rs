//! Raft: a pure consensus core and the key-value server around it.
