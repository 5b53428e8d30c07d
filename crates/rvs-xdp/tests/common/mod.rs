//! Shared test support: frame builders and the fixture lab.
pub mod frames;
pub mod lab;
