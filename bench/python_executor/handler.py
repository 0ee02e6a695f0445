"""The Python executor the benchmark compares against: what a user would
write for the same job with AWS's Python runtime client (awslambdaric).

`git clone --depth 1` through subprocess, the script through subprocess with
its output captured, the work directory removed afterwards. No sandboxing,
no redaction, no S3: a lower bound on what a Python executor costs.
"""

import os
import shutil
import subprocess
import tempfile


def handler(event, context):
    repo = event["repository"]
    work = tempfile.mkdtemp(prefix="job-")
    try:
        dest = os.path.join(work, "repo")
        clone = ["git", "clone", "--quiet", "--depth", "1"]
        if repo.get("ref"):
            clone += ["--branch", repo["ref"]]
        clone += [repo["url"], dest]
        cloned = subprocess.run(clone, capture_output=True)
        if cloned.returncode != 0:
            return {
                "execution_status": "ERROR",
                "error": {"kind": "clone_failed", "message": cloned.stderr.decode(errors="replace")},
            }
        script = os.path.join(dest, event["script"].lstrip("/"))
        ran = subprocess.run(
            ["python3", script, *event.get("args", [])],
            cwd=dest,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=event.get("timeout_seconds"),
        )
        log = ran.stdout.decode(errors="replace")
        return {
            "execution_status": "SUCCEEDED" if ran.returncode == 0 else "FAILED",
            "exit_code": ran.returncode,
            "log": log[-256 * 1024:],
            "log_truncated": len(log) > 256 * 1024,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
