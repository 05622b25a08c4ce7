//! Any bytes as a dump: parse never panics; what parses re-encodes to an equal dump.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orcwalk_sim::dump::Dump;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Dump::parse(data) {
        let again = Dump::parse(&d.write()).expect("a written dump parses");
        assert_eq!(again, d);
    }
});
