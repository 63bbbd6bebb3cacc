//! Workloads (register, lock) and the clients and db definitions of each system under test.
