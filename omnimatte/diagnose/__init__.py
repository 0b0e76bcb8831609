"""The diagnose stage: tell the user when a clip breaks the method, and where.

One module per check family (camera_model, moving_background, exposure, masks, layers, seeds),
the findings they report (findings), their settings (settings), what the stage reads (inputs),
draws (drawing) and writes (outputs), and the runner (run). The per-pixel map of how well the
registered background explains each frame is omnimatte/background_fit.py, which rendering can
consult too.
"""

from omnimatte.diagnose.findings import FAIL, OK, WARN, CheckResult, Finding
from omnimatte.diagnose.run import diagnose, run_checks, run_diagnose
from omnimatte.diagnose.settings import DiagnoseSettings

__all__ = ["FAIL", "OK", "WARN", "CheckResult", "DiagnoseSettings", "Finding", "diagnose", "run_checks", "run_diagnose"]
