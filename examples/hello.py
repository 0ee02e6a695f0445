"""A first job: greets, shows its environment, and returns JSON.

    pyexec run --repo . --script /examples/hello.py -- --name ops
"""
import argparse
import json
import os
import platform
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--name", default="world")
args = parser.parse_args()

print(f"hello, {args.name}", file=sys.stderr)
result = {
    "greeting": f"hello, {args.name}",
    "python": platform.python_version(),
    "commit": os.environ.get("PYEXEC_COMMIT"),
    "request_id": os.environ.get("PYEXEC_REQUEST_ID"),
    "cwd_is_checkout": os.path.isfile(os.path.join(os.getcwd(), "examples", "hello.py")),
}
with open(os.environ["PYEXEC_OUTPUT"], "w") as f:
    json.dump(result, f)
print("done")
