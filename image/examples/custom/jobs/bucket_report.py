"""Lists the account's S3 buckets with their object count and size, as a table.

A job for a custom pyexec image: boto3 comes with the base image, tabulate
with the custom image (image/examples/custom/requirements.txt). Commit it to
the repository your jobs run from, then:

    pyexec invoke --target prod --repo ops --script /jobs/bucket_report.py -- --prefix logs-
"""

import argparse
import json
import os

import boto3
from tabulate import tabulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", default="", help="only buckets whose name starts with this")
    args = parser.parse_args()

    s3 = boto3.client("s3")
    rows = []
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        if not name.startswith(args.prefix):
            continue
        count = size = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                count += 1
                size += obj["Size"]
        rows.append({"bucket": name, "objects": count, "bytes": size})

    print(tabulate(rows, headers="keys", tablefmt="github"))
    # The job's result: $PYEXEC_OUTPUT holds JSON for the caller.
    with open(os.environ["PYEXEC_OUTPUT"], "w") as out:
        json.dump({"buckets": rows}, out)


if __name__ == "__main__":
    main()
