//! How a result is shown: a short human summary, or the raw JSON.

use std::fmt::Write;

use pyexec_runtime::JobResult;

/// A few lines for a person: status, exit, commit, timings, output, where.
pub fn summary(result: &JobResult) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", result.execution_status);
    if let Some(code) = result.exit_code {
        let _ = write!(s, "  exit {code}");
    }
    if let Some(sig) = result.signal {
        let _ = write!(s, "  signal {sig}");
    }
    if let Some(commit) = &result.commit {
        let _ = write!(s, "  commit {}", &commit[..commit.len().min(12)]);
    }
    let t = &result.timings_ms;
    let _ = writeln!(
        s,
        "  (clone {} ms, script {} ms, upload {} ms, total {} ms)",
        t.clone, t.script, t.upload, t.total
    );
    if let Some(e) = &result.error {
        let _ = writeln!(s, "error [{}]: {}", e.kind, e.message);
    }
    if !result.output.is_null() {
        let out = match &result.output {
            serde_json::Value::String(text) => text.trim_end().to_owned(),
            v => serde_json::to_string(v).unwrap_or_default(),
        };
        let _ = writeln!(s, "output: {out}");
    } else if result.output_truncated {
        let _ = writeln!(s, "output: too large for the response (output_truncated)");
    }
    if result.log_truncated {
        let _ = writeln!(s, "log: only the tail is in the result (log_truncated)");
    }
    if let (Some(bucket), Some(key)) = (&result.bucket, &result.key) {
        let _ = writeln!(s, "s3: s3://{bucket}/{key}");
    }
    for a in &result.artifacts {
        let _ = writeln!(s, "artifact: {} ({} bytes)", a.key, a.bytes);
    }
    s
}

/// The fan-out summary: one row per target.
pub fn table(outcomes: &[crate::invoke::TargetOutcome]) -> String {
    let mut s = format!(
        "{:<16} {:<12} {:<10} {:>5} {:>9}  {}\n",
        "TARGET", "ACCOUNT", "STATUS", "EXIT", "TOTAL_MS", "ERROR"
    );
    for o in outcomes {
        let status = o.status().to_string();
        let (exit, total, error) = match &o.result {
            Some(r) => (
                r.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.timings_ms.total.to_string(),
                r.error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
            ),
            None => ("-".into(), "-".into(), o.error.clone().unwrap_or_default()),
        };
        let _ = writeln!(
            s,
            "{:<16} {:<12} {:<10} {:>5} {:>9}  {}",
            o.target, o.account, status, exit, total, error
        );
    }
    s
}
