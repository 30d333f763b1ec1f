//! How the model runs: which backend, on how many threads, and whether this build can do it. The
//! environment variables that choose them are read in `src/settings/`.

use std::path::PathBuf;

use crate::core::error::{Error, Result};

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

    /// Whether this build can run the backend on more than one thread (tract needs the `multithread`
    /// feature).
    pub fn multithreaded(self) -> bool {
        match self {
            Backend::Tract => cfg!(feature = "multithread"),
            Backend::OnnxRuntime => true,
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
    /// tract: run 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) (`winograd.rs`) instead of
    /// tract's im2col (`DETECTOR_WINOGRAD=on`). Off by default: 11-12% less inference time does not yet
    /// pay for 18-20 ms more plan build (BENCHMARKS.md).
    pub winograd: bool,
    /// tract: threads the plan build uses, one segment of the graph each (`segments.rs`); the cores
    /// the process sees, from the settings. The plan is the same on any number.
    pub plan_threads: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            backend: Backend::Tract,
            threads: 1,
            onnxruntime_library: None,
            winograd: false,
            plan_threads: 1,
        }
    }
}

impl RunConfig {
    /// Memory Lambda gives one full vCPU for (MB); CPU grows in proportion to memory.
    pub const MIB_PER_VCPU: u64 = 1769;

    /// Threads when `DETECTOR_THREADS` is unset: one per full vCPU a Lambda function of `memory_mib`
    /// gets, at most `cores` (the cores this process sees), and one for a backend this build runs on
    /// one thread only. Outside Lambda (`None`): one, so `detect --jobs` owns the cores.
    pub fn default_threads(backend: Backend, memory_mib: Option<u64>, cores: usize) -> usize {
        match memory_mib {
            Some(mib) if backend.multithreaded() => {
                let vcpus = usize::try_from(mib / Self::MIB_PER_VCPU).unwrap_or(usize::MAX);
                vcpus.min(cores).max(1)
            }
            _ => 1,
        }
    }

    /// Refuses what this build cannot do, with the cargo feature that would.
    pub fn check(&self) -> Result<()> {
        if !self.backend.available() {
            return Err(Error::backend(format!(
                "DETECTOR_BACKEND={}: this build has no ONNX Runtime backend; build with `--features onnxruntime`",
                self.backend.name()
            )));
        }
        if self.threads == 0 {
            return Err(Error::backend("at least one thread is needed"));
        }
        if self.threads > 1 && !self.backend.multithreaded() {
            return Err(Error::backend(format!(
                "DETECTOR_THREADS={}: this build runs tract on one thread; build it with the `multithread` feature (a default one)",
                self.threads
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threads_follow_the_lambda_memory_size_up_to_the_cores() {
        let threads =
            |memory, cores| RunConfig::default_threads(Backend::OnnxRuntime, memory, cores);
        // Lambda: one vCPU per 1769 MB, six at most (10,240 MB), never more than the cores seen.
        for (memory, cores, expected) in [
            (128, 2, 1),
            (1768, 2, 1),
            (1769, 2, 1),
            (3537, 2, 1),
            (3538, 2, 2),
            (3538, 3, 2),
            (10240, 6, 5),
            (10240, 2, 2),
            (u64::MAX, 6, 6),
        ] {
            assert_eq!(
                threads(Some(memory), cores),
                expected,
                "{memory} MB, {cores} cores"
            );
        }
        assert_eq!(threads(None, 8), 1, "outside Lambda");
        assert_eq!(threads(Some(3538), 0), 1, "no core count");
        // tract runs on more than one thread only in a build with the `multithread` feature.
        let tract = RunConfig::default_threads(Backend::Tract, Some(10240), 6);
        assert_eq!(tract, if cfg!(feature = "multithread") { 5 } else { 1 });
    }
}
