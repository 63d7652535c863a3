"""`python -m mlops_course check|reset`: the same as the `mlops-course` command."""

import sys

from mlops_course.cli import main

sys.exit(main())
