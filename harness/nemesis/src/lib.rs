//! The nemesis: faults as values computed by pure functions, applied by one thin layer.
//!
//! Layout:
//! - `grudge`: partition shapes (halves, one, majority-ring, bridge, primaries) as grudges.
//! - `schedule`: the seeded fault schedule (which fault starts and stops when) and the
//!   report's `:perf` metadata per fault family.
//! - `net`: applies partitions and packet faults on hosts (iptables, tc) and undoes them exactly.
//! - `clock`: shifts a host's clock (libfaketime timestamp file, or the system clock on VMs).
//! - `runner`: the scheduled nemesis the run plays beside the clients, with its heal.

pub mod clock;
pub mod grudge;
pub mod net;
pub mod runner;
pub mod schedule;
