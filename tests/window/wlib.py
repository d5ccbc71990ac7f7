"""Helpers of the window tests: the reference KPIs' stage config (read from the pipeline file),
and kpilib's event generator, recomputation and runner (tests/window-kpi/kpilib.py)."""
import json, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "window-kpi"))
from kpilib import *  # noqa: E402,F401,F403
import yaml  # noqa: E402

def reference_with(**over):
    """The `with` of the kpi stage of pipelines/ecommerce-analytics.yaml, overridden, as a
    one-line YAML flow map (JSON)."""
    doc = yaml.safe_load(open(os.path.join(SRC, "pipelines", "ecommerce-analytics.yaml")))
    st = [s for s in doc["stages"] if s["name"] == "kpi"][0]
    assert st["use"] == "window"
    w = dict(st["with"])
    w.update(over)
    return json.dumps(w)

def kpi_with(**over):
    """window-kpi with the reference pipeline's window settings (the stage it ran before the
    pipeline moved to `window`), overridden."""
    doc = yaml.safe_load(open(os.path.join(SRC, "pipelines", "ecommerce-analytics.yaml")))
    st = [s for s in doc["stages"] if s["name"] == "kpi"][0]
    w = {k: v for k, v in st["with"].items()
         if k in ("windows", "allowed_lateness", "retention", "emit_interval", "topic_prefix")}
    w.update(over)
    return json.dumps(w)

class Failures:
    def __init__(self):
        self.list = []

    def __call__(self, msg):
        self.list.append(msg)
        if len(self.list) < 30:
            print("FAIL", msg)

    def exit(self, name):
        print(f"{name}: {len(self.list)} failures")
        sys.exit(1 if self.list else 0)
