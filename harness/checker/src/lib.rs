//! faultline's checker: the history model (`history`), and the checkers that turn a
//! history into a verdict (`verdict`).
//!
//! Layout:
//! - `history`: one operation event (`Op`) exactly as `history.jsonl` stores it (DESIGN §2).
//! - `verdict`: `Validity` (true / false / "unknown") and how verdicts combine (DESIGN §3).

pub mod history;
pub mod verdict;
