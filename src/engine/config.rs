//! How the model runs: which backend, on how many threads, and whether this build can do it. The
//! environment variables that choose them are read in `src/settings.rs`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// What runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// tract, compiled in: no shared library, the smallest package.
    #[default]
    Tract,
    /// ONNX Runtime through the `ort` crate, loaded from `libonnxruntime.so` at start-up (the
    /// `onnxruntime` feature).
    OnnxRuntime,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::OnnxRuntime => "onnxruntime",
        }
    }

    /// A backend by name (case-insensitive; `ort` for short).
    pub fn from_name(name: &str) -> Option<Backend> {
        match name.trim().to_ascii_lowercase().as_str() {
            "tract" => Some(Backend::Tract),
            "onnxruntime" | "ort" => Some(Backend::OnnxRuntime),
            _ => None,
        }
    }

    /// Whether this build can run the backend.
    pub fn available(self) -> bool {
        match self {
            Backend::Tract => true,
            Backend::OnnxRuntime => cfg!(feature = "onnxruntime"),
        }
    }
}

/// How the model runs: which backend, on how many threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    pub backend: Backend,
    /// Threads for one inference. More than one needs the `multithread` feature for tract; ONNX Runtime
    /// always has it. Lambda gives a function a second vCPU from 1769 MB of memory.
    pub threads: usize,
    /// The ONNX Runtime library; `None`: `libonnxruntime.so` beside the executable, then the loader's
    /// search path.
    pub onnxruntime_library: Option<PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            backend: Backend::Tract,
            threads: 1,
            onnxruntime_library: None,
        }
    }
}

impl RunConfig {
    /// Refuses what this build cannot do, with the cargo feature that would.
    pub fn check(&self) -> Result<()> {
        if !self.backend.available() {
            return Err(Error::Backend(format!(
                "DETECTOR_BACKEND={}: this build has no ONNX Runtime backend; build with `--features onnxruntime`",
                self.backend.name()
            )));
        }
        if self.threads == 0 {
            return Err(Error::Backend("at least one thread is needed".into()));
        }
        if self.backend == Backend::Tract && self.threads > 1 && !cfg!(feature = "multithread") {
            return Err(Error::Backend(format!(
                "DETECTOR_THREADS={}: this build runs tract on one thread; build with `--features multithread`",
                self.threads
            )));
        }
        Ok(())
    }
}
