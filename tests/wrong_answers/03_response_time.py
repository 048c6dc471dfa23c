"""Plausible wrong answers to notebook 03's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the probe must give less than full credit.
"""

A = "time_to_useful follows the response-time rule"
B = "should_flush sends full or timed-out batches only"
C = "batching_choice keeps p95 within the target in few calls"

WRONG = [
    # -- time_to_useful ------------------------------------------------------------------------
    dict(check=A, why="asks 'is it text?' before 'is it deferred?': deferred text is timed as "
                      "streamed",
         source='''
def time_to_useful(result, request_type, deferred=False):
    if request_type == "text":
        return result.first_content_s
    if deferred:
        return 0.0
    return result.latency_s
''', feedback=["'text', deferred=True", "(its time to first token)", "text included"]),
    dict(check=A, why="treats analysis as streamed because a text model writes it",
         source='''
def time_to_useful(result, request_type, deferred=False):
    if deferred:
        return 0.0
    if request_type in ("image", "photo", "video", "audio"):
        return result.latency_s
    return result.first_content_s
''', feedback=["'analysis'", "(its time to first token)", "useless half-done"]),
    dict(check=A, why="times every answer whole: streaming is forgotten",
         source='''
def time_to_useful(result, request_type, deferred=False):
    if deferred:
        return 0.0
    return result.latency_s
''', feedback=["'text', deferred=False", "(its whole answer)", "first token"]),
    dict(check=A, why="ignores the deferred flag: a video is timed to its completion",
         source='''
def time_to_useful(result, request_type, deferred=False):
    return result.first_content_s if request_type == "text" else result.latency_s
''', feedback=["'video', deferred=True", "0.0 s (the handle, at once)"]),

    # -- should_flush ----------------------------------------------------------------------------
    dict(check=B, why="a strict comparison on the size: exactly full keeps waiting",
         source='''
def should_flush(waiting, oldest_wait_s, max_batch_size, max_wait_s):
    if waiting == 0:
        return False
    return waiting > max_batch_size or oldest_wait_s >= max_wait_s
''', feedback=["should_flush(10, 0.0, 10, 0.1) returned False", "exactly max_batch_size"]),
    dict(check=B, why="a strict comparison on the wait: exactly at the limit keeps waiting",
         source='''
def should_flush(waiting, oldest_wait_s, max_batch_size, max_wait_s):
    if waiting == 0:
        return False
    return waiting >= max_batch_size or oldest_wait_s > max_wait_s
''', feedback=["should_flush(3, 0.1, 10, 0.1) returned False", "exactly max_wait_s"]),
    dict(check=B, why="no empty check: an empty batcher whose clock ran out sends an empty batch",
         source='''
def should_flush(waiting, oldest_wait_s, max_batch_size, max_wait_s):
    return waiting >= max_batch_size or oldest_wait_s >= max_wait_s
''', feedback=["should_flush(0, 9.0, 10, 0.1) returned True", "empty batch"]),
    dict(check=B, why="returns the count itself for an empty batch (0, not False)",
         source='''
def should_flush(waiting, oldest_wait_s, max_batch_size, max_wait_s):
    return waiting and (waiting >= max_batch_size or oldest_wait_s >= max_wait_s)
''', feedback=["returned 0", "expected True or False"]),
    dict(check=B, why="needs both limits at once instead of either",
         source='''
def should_flush(waiting, oldest_wait_s, max_batch_size, max_wait_s):
    if waiting == 0:
        return False
    return waiting >= max_batch_size and oldest_wait_s >= max_wait_s
''', feedback=["should_flush(10, 0.0, 10, 0.1) returned False", "full batch"]),

    # -- batching_choice -------------------------------------------------------------------------
    dict(check=C, why="no batching at all: every request its own call, and the queue never drains",
         source='''
def batching_choice():
    return BatchingChoice(max_batch_size=1, max_wait_s=0.0)
''', feedback=["half the requests of peak 1", "the queue grows"]),
    dict(check=C, why="spends far more than the p95 budget: big batches and a long wait",
         source='''
def batching_choice():
    return BatchingChoice(max_batch_size=32, max_wait_s=1.0)
''', feedback=["over the 1.2 s target", "requests answered later"]),
    dict(check=C, why="the right wait with a batch too small: bursts queue behind full batches",
         source='''
def batching_choice():
    return BatchingChoice(max_batch_size=4, max_wait_s=0.6)
''', feedback=["the p95 of peak 1", "over the 1.2 s target", "went because the batch was full"]),
    dict(check=C, why="timid: well within the target, at twice the calls it needs",
         source='''
def batching_choice():
    return BatchingChoice(max_batch_size=8, max_wait_s=0.2)
''', feedback=["every peak is within the target", "the best known choice takes",
                "p95 budget unspent"]),
    dict(check=C, why="too much headroom: a wait well short of what the target allows",
         source='''
def batching_choice():
    return BatchingChoice(max_batch_size=12, max_wait_s=0.5)
''', feedback=["every peak is within the target", "the best known choice takes"]),
    dict(check=C, why="returns the two numbers as a tuple, not a BatchingChoice",
         source='''
def batching_choice():
    return (16, 0.5)
''', feedback=["returned (16, 0.5)", "expected a BatchingChoice"]),
]
