//! Criterion benchmarks live in `benches/`; this library is empty. See `README.md` here for the
//! figures and the commands that produced them.
