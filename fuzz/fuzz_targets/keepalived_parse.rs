//! Fuzz the keepalived.conf parser: any bytes must give a config or located errors, never a
//! panic, a hang or unbounded memory. Includes are refused (no file-system access).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_config::keepalived::{Includes, parse_with};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match parse_with(text, Path::new("fuzz.conf"), Includes::Refuse) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    assert!(w.location.line >= 1);
                }
            }
            Err(errors) => {
                assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    assert!(e.location.line >= 1 && e.location.column >= 1, "{e}");
                }
            }
        }
    }
});
