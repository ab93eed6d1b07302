//! **Tools** beside the worker: the load generator, the demo, the recipe gallery, synthetic
//! sample images, and request files for the command line.

pub mod bench;
pub mod cli;
pub mod demo;
pub mod gallery;
pub mod keys;
pub mod request_file;
pub mod samples;
