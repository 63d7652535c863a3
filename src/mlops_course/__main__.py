"""`python -m mlops_course check|reset|roster`: the same as the `mlops-course` command."""

import sys

from mlops_course.cli import main

if __name__ == "__main__":
    sys.exit(main())
