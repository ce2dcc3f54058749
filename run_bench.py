#!/usr/bin/env python
"""PromptShift's command line from a checkout: `python run_bench.py --help` (the same as `bench.cli`)."""
import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
