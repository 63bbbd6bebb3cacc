//! The run: db and client traits, the seeded generator, the durable history writer, the nemesis hook.
