"""``python -m cfopt ...``: the command line through this interpreter.

A notebook cell reaches the command line of its own kernel's environment with
``!{sys.executable} -m cfopt grade 00_setup_and_tour.ipynb``, whether or not a ``cfopt`` script
is on ``PATH`` (it is not, unless the venv is activated).
"""
import sys

from .cli import main

if __name__ == "__main__":  # not when a test collector imports this module
    sys.exit(main())
