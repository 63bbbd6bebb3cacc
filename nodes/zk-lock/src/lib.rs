//! A ZooKeeper-style lock service on the Raft log: sessions, ephemeral sequential nodes, fencing tokens.
