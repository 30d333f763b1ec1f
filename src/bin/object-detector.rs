//! `object-detector`: the AWS Lambda function. The detector (the optimized tract plan) is built here once
//! per execution environment, before the runtime loop, and borrowed by every invocation.
//!
//! Outside Lambda, `object-detector EVENT.json...` runs each event file through the same handler and
//! prints the response (status on stderr, body on stdout; the log line and metric records, which in
//! Lambda go to stderr and stdout, all on stderr): the quickest way to see the function work.

use std::process::ExitCode;
use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use object_detector::aws::lambda::{App, Handled, Invocation};
use object_detector::core::error::chain;
use object_detector::core::response::millis;
use object_detector::Settings;
use serde_json::{json, Value};

// lambda_runtime sets `_X_AMZN_TRACE_ID` before every invocation; glibc's own `setenv` would keep
// every value (object_detector::aws::lambda::trace_env).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
object_detector::route_setenv_here!();

fn build(settings: &Settings) -> object_detector::Result<App> {
    let detector = settings.detector()?;
    let m = detector.manifest();
    eprintln!(
        "{}",
        json!({
            "level": "INFO",
            "message": "init",
            "model": m.name,
            "version": m.version,
            "plan_build_ms": millis(detector.plan_build_time()),
            "backend": detector.run_config().backend.name(),
            "threads": detector.run_config().threads,
        })
    );
    App::new(Arc::new(detector), settings.lambda_config())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    object_detector::core::memory::reuse_freed_memory();
    let files: Vec<String> = std::env::args().skip(1).collect();
    let built =
        Settings::from_env().and_then(|settings| Ok((build(&settings)?, settings.in_lambda)));
    let (app, in_lambda) = match built {
        Ok(app) => app,
        Err(e) => {
            // In Lambda this exits init with an error, which the service reports as Runtime.ExitError
            // together with this line in the function's log.
            eprintln!(
                "{}",
                json!({"level": "ERROR", "message": "init failed", "code": e.code(), "error": chain(&e)})
            );
            return ExitCode::from(2);
        }
    };
    if in_lambda || files.is_empty() {
        let app = &app;
        let handler = service_fn(move |event: LambdaEvent<Value>| async move {
            let context = &event.context;
            let invocation = Invocation {
                request_id: &context.request_id,
                trace_id: context.xray_trace_id.as_deref(),
            };
            app.handle(event.payload, invocation).await
        });
        return match lambda_runtime::run(handler).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "{}",
                    json!({"level": "ERROR", "message": "runtime stopped", "error": e.to_string()})
                );
                ExitCode::from(1)
            }
        };
    }
    local(&app, &files).await
}

/// Runs event files through the handler, printing what a caller would receive.
async fn local(app: &App, files: &[String]) -> ExitCode {
    let mut failed = false;
    for (i, file) in files.iter().enumerate() {
        let event: Value = match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("not JSON: {e}")))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{file}: {e}");
                failed = true;
                continue;
            }
        };
        let request_id = format!("local-{i}");
        let invocation = Invocation {
            request_id: &request_id,
            trace_id: None,
        };
        let Handled {
            result,
            log_line,
            object_lines,
            metric_records,
            error_type,
        } = app.handle_recorded(event, invocation).await;
        for line in object_lines {
            eprintln!("{line}");
        }
        eprintln!("{log_line}");
        for record in metric_records {
            eprintln!("{record}");
        }
        match result {
            Ok(raw) => {
                let response: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                let status = response.get("statusCode").and_then(Value::as_i64);
                eprintln!(
                    "{file}: HTTP {}",
                    status.map_or("- (direct invocation)".into(), |s| s.to_string())
                );
                // An HTTP response's body is printed as the client receives it; a direct one as is.
                match response.get("body").and_then(Value::as_str) {
                    Some(text) => println!("{text}"),
                    None if status.is_some() => println!(),
                    None => println!("{}", raw.get()),
                }
                failed |= status.is_some_and(|s| s >= 400);
            }
            Err(e) => {
                let error_type = error_type.unwrap_or(e.code().as_str());
                eprintln!("{file}: function error {error_type}");
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"errorType": error_type, "errorMessage": e.message()})
                    )
                    .unwrap_or_default()
                );
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
