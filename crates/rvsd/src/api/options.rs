//! Service options the TOML config refuses are refused by the API too (400 `invalid_state`,
//! every problem listed), whichever way they come: `POST /v1/services`, `PUT
//! /v1/services/{id}`, `PUT /v1/state`. The model takes them, and the proxy engine would run
//! a `connect_timeout_ms` of 0 as 1 ms (every connect to a real beyond loopback times out).

use rvs_core::model::{ServiceKey, ServiceOptions};

/// What is wrong with `options` of the service `key` (empty if nothing is).
pub fn option_errors(key: &ServiceKey, options: &ServiceOptions) -> Vec<String> {
    let p = &options.proxy;
    let zero_timeout = |name: &str| {
        format!(
            "{key}: proxy.{name} must be at least 1 (milliseconds): 0 would end every \
             connection at once; leave it out for the default"
        )
    };
    let mut out = Vec::new();
    if p.connect_timeout_ms == 0 {
        out.push(zero_timeout("connect_timeout_ms"));
    }
    if p.idle_timeout_ms == Some(0) {
        out.push(zero_timeout("idle_timeout_ms"));
    }
    if p.fail_timeout_ms == 0 {
        out.push(format!(
            "{key}: proxy.fail_timeout_ms must be at least 1 (milliseconds): it is how long a \
             failing real stays out; to turn passive failure detection off set max_fails = 0"
        ));
    }
    out
}
