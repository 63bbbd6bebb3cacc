//! The nemesis: faults as values computed by pure functions, applied by one thin layer.
//!
//! Layout:
//! - `grudge`: partition shapes (halves, one, majority-ring, bridge, primaries) as grudges.
//! - `schedule`: the seeded fault schedule (which fault starts and stops when) and the
//!   report's `:perf` metadata per fault family.

pub mod grudge;
pub mod schedule;
