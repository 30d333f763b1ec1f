//! How the model runs: which backend, on how many threads.

use crate::error::{Error, Result};

/// What runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// tract, compiled in: no shared library, the smallest package.
    #[default]
    Tract,
    /// ONNX Runtime through the `ort` crate, loaded from `libonnxruntime.so` at start-up (the
    /// `onnxruntime` feature; `ORT_DYLIB_PATH` names the library).
    OnnxRuntime,
}

impl Backend {
    /// The environment variable that chooses the backend: `tract` (default) or `onnxruntime`.
    pub const ENV: &'static str = "DETECTOR_BACKEND";

    pub fn name(self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::OnnxRuntime => "onnxruntime",
        }
    }

    /// Whether this build can run the backend.
    pub fn available(self) -> bool {
        match self {
            Backend::Tract => true,
            Backend::OnnxRuntime => cfg!(feature = "onnxruntime"),
        }
    }

    /// A `DETECTOR_BACKEND` value (case-insensitive; `ort` for short). Whether this build has it is
    /// checked by [`RunConfig::parse`].
    pub fn parse(value: &str) -> Result<Backend> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "tract" => Ok(Backend::Tract),
            "onnxruntime" | "ort" => Ok(Backend::OnnxRuntime),
            other => Err(Error::Backend(format!(
                "{}={other:?} is not a backend; use `tract` or `onnxruntime`",
                Backend::ENV
            ))),
        }
    }
}

/// How the model runs: which backend, on how many threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    pub backend: Backend,
    /// Threads for one inference. More than one needs the `multithread` feature for tract; ONNX Runtime
    /// always has it. Lambda gives a function a second vCPU from 1769 MB of memory.
    pub threads: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            backend: Backend::Tract,
            threads: 1,
        }
    }
}

impl RunConfig {
    /// The environment variable for [`RunConfig::threads`] (default 1).
    pub const THREADS_ENV: &'static str = "DETECTOR_THREADS";

    /// `DETECTOR_BACKEND` and `DETECTOR_THREADS`, defaults where unset or empty.
    pub fn from_env() -> Result<RunConfig> {
        let var = |name: &str| std::env::var(name).ok();
        RunConfig::parse(
            var(Backend::ENV).as_deref(),
            var(Self::THREADS_ENV).as_deref(),
        )
    }

    /// The values of `DETECTOR_BACKEND` and `DETECTOR_THREADS`; `None` or blank means the default.
    pub fn parse(backend: Option<&str>, threads: Option<&str>) -> Result<RunConfig> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let backend = match set(backend) {
            Some(v) => Backend::parse(v)?,
            None => Backend::Tract,
        };
        let threads = match set(threads) {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=256).contains(&n) => n,
                _ => {
                    return Err(Error::Backend(format!(
                        "{}={v:?} is not a thread count from 1 to 256",
                        Self::THREADS_ENV
                    )))
                }
            },
        };
        let config = RunConfig { backend, threads };
        config.check()?;
        Ok(config)
    }

    pub(super) fn check(&self) -> Result<()> {
        if !self.backend.available() {
            return Err(Error::Backend(format!(
                "{}={}: this build has no ONNX Runtime backend; build with `--features onnxruntime`",
                Backend::ENV,
                self.backend.name()
            )));
        }
        if self.threads == 0 {
            return Err(Error::Backend("at least one thread is needed".into()));
        }
        if self.backend == Backend::Tract && self.threads > 1 && !cfg!(feature = "multithread") {
            return Err(Error::Backend(format!(
                "{}={}: this build runs tract on one thread; build with `--features multithread`",
                Self::THREADS_ENV,
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
    fn run_config_defaults_to_tract_on_one_thread() {
        for (b, t) in [
            (None, None),
            (Some(""), Some("  ")),
            (Some("tract"), Some("1")),
        ] {
            assert_eq!(RunConfig::parse(b, t).unwrap(), RunConfig::default());
        }
        assert_eq!(
            RunConfig::parse(Some(" TRACT "), None).unwrap().backend,
            Backend::Tract
        );
    }

    #[test]
    fn run_config_refuses_what_it_cannot_do() {
        let err = |b, t| {
            let e = RunConfig::parse(b, t).unwrap_err();
            assert_eq!(e.code(), "backend_unavailable", "{e}");
            assert!(!e.is_client_error());
            e.to_string()
        };
        assert!(err(Some("cuda"), None).contains("`tract` or `onnxruntime`"));
        for t in ["0", "-1", "two", "257", "1.5"] {
            assert!(err(None, Some(t)).contains("DETECTOR_THREADS"), "{t}");
        }
        if cfg!(feature = "onnxruntime") {
            let c = RunConfig::parse(Some("ort"), Some("3")).unwrap();
            assert_eq!((c.backend, c.threads), (Backend::OnnxRuntime, 3));
        } else {
            assert!(err(Some("onnxruntime"), None).contains("--features onnxruntime"));
        }
        if cfg!(feature = "multithread") {
            assert_eq!(RunConfig::parse(None, Some("2")).unwrap().threads, 2);
        } else {
            assert!(err(None, Some("2")).contains("--features multithread"));
        }
    }
}
