//! The Python classes of `_native`, one file each, named after the class they define.

pub mod ai;
pub mod config;
pub mod encryption;
pub mod generic;
pub mod memory;
