"""Decision exercises: what the course's decision checks replay, and the best known answers.

A decision exercise asks the learner for a choice with a trade-off (which model for which task,
which TTL and capacity, which batch size and wait, which alert rule) and grades it on its outcome
on a workload, beside the best answer a search finds. One module per part of the course:
``cost``, ``caching``, ``latency``, ``batching``, ``monitoring``, ``bonus``, ``capstone``.
"""
