//! Seeded generators of random histories, for the differential tests and the benchmark.
