"""The red-team notebooks attack whatever runs them: never collect them as tests (nbval would run
them on this machine, outside any sandbox). ``test_redteam.py`` grades them in sandboxes."""
collect_ignore_glob = ["*.ipynb"]
