//! Shared test support: frame builders, the fixture lab, and the end-to-end lab.
pub mod e2e_lab;
pub mod frames;
pub mod keep;
pub mod lab;
pub mod nat_lab;
