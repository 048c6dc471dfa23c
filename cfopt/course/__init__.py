"""The course machinery: exercise notebooks built from solutions, check cells, grading in sandboxes.

- ``kit``: what notebooks import (``kit.check``, ``kit.probe``, ``kit.setup``) and ``cfopt kit build``
- ``cells``: what a notebook's cells mean (check cells, probe cells, the exercise id)
- ``checks``, ``probe``, ``verdicts``: instant feedback in the kernel; observations; grades outside it
- ``grading``, ``runner``, ``sandbox``, ``guard``, ``scan``, ``redact``: ``cfopt grade``
- ``release``, ``command``, ``nbrun``: ``cfopt kit release``, the command line, running a notebook
"""
