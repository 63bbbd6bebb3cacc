//! Benchmark of the checker on bench-data (filled in below).
fn main() {}
