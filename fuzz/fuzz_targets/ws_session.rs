#![no_main]
// The check and its invariants: wire_academy::fuzzing::ws_session.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wire_academy::fuzzing::check("ws_session", data));
