#![no_main]
// The check and its invariants: wire_academy::fuzzing::hexread.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wire_academy::fuzzing::check("hexread", data));
