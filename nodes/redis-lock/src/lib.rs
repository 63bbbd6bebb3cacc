//! A Redis-style lock server: a RESP subset, TTLs by the server's clock, async replication and failover.
