//! Any comment text: parsing a marker never panics, and a parsed marker prints back as the
//! policy id (and suffix) it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagsmith::rewrite::{MarkerParse, parse_marker};

fuzz_target!(|body: &str| {
    if let MarkerParse::Marker(marker) = parse_marker(body) {
        let printed = marker.to_string();
        let again = format!("{{\"$imagepolicy\": {}}}", serde_json_string(&printed));
        assert_eq!(parse_marker(&again), MarkerParse::Marker(marker));
    }
});

fn serde_json_string(s: &str) -> String {
    // Policy ids are plain ASCII without quotes or backslashes, so no escaping is needed.
    format!("\"{s}\"")
}
