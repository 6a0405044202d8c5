#![no_main]
// The check and its invariants: wire_academy::fuzzing::trace_conversation.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wire_academy::fuzzing::check("trace_conversation", data));
