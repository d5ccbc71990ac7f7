"""waiting.py — what the Python harnesses share (tests/kafka/harness.py, used by the kafka and
http tests, and scripts/chaos/procs.py): a bounded wait on a condition, and a signal to a
process group that may already be gone."""
import os
import time


def wait_for(what, pred, timeout, every=0.1, error=RuntimeError):
    """Polls pred() every `every` s until it returns something true (returned), or raises
    `error` naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise error("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(every)


def signal_group(pid, sig):
    """Sends sig to the process group `pid` leads (started with start_new_session=True), so a
    supervisor and its pipeline children get it together; a group already gone is fine."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
