//! rvs native TOML configuration. (Being built.)
