//! The Lambda runtime of Python Exec: one job per invocation through the
//! shared executor. Every JSON payload gets a result object; a payload that is
//! not JSON gets Lambda's function-error reply (from `lambda_runtime`). The
//! script's log goes to stdout (CloudWatch) as it arrives.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pyexec_runtime::capture::{JsonLog, LiveLog, RawLog};
use pyexec_runtime::{Executor, Invocation, Settings};
use tokio_util::sync::CancellationToken;

fn main() -> Result<(), Error> {
    // One malloc arena: the runtime's threads mostly wait on git, the script
    // and S3, and an arena per thread is resident memory for nothing.
    // SAFETY: mallopt before any other thread exists.
    unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1) };
    pyexec_runtime::confine::runtime()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let json_logs =
        std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let settings = Settings::for_lambda(|name| std::env::var(name).ok());
    let live: pyexec_runtime::LiveLogFactory =
        Box::new(move |inv: &Invocation| -> Box<dyn LiveLog> {
            if json_logs {
                Box::new(JsonLog {
                    out: std::io::stdout(),
                    request_id: inv.request_id.clone(),
                })
            } else {
                Box::new(RawLog(std::io::stdout()))
            }
        });
    let executor = Arc::new(Executor::new(settings, live)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let executor = executor.clone();
        async move {
            let inv = Invocation {
                request_id: event.context.request_id.clone(),
                job_id: uuid::Uuid::new_v4().to_string(),
                deadline: Some(
                    SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline),
                ),
                cancel: CancellationToken::new(),
            };
            Ok::<_, Error>(executor.run(event.payload, &inv).await)
        }
    }))
    .await
}
