"""Exits 3 after a line on each stream: a FAILED result with exit_code 3."""
import sys

print("about to fail")
print("something went wrong", file=sys.stderr)
sys.exit(3)
