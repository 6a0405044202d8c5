#![no_main]
// The check and its invariants: wire_academy::fuzzing::ws_handshake.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wire_academy::fuzzing::check("ws_handshake", data));
