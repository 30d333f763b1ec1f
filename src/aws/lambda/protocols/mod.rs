//! The HTTP protocols the function speaks, one file each: its routes, its requests read into the
//! core's, its answers and errors in its own shape.

pub mod native;

pub use native::Route;
