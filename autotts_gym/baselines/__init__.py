"""Baseline controllers of the AutoTTS paper's Table 1, written against the public
controller contract (``make_controller(beta)`` -> object with ``solve(session)``)."""

REGISTRY = {
    "sc64": "autotts_gym.baselines.sc",
    "asc": "autotts_gym.baselines.asc",
    "esc": "autotts_gym.baselines.esc",
    "parallel_probe": "autotts_gym.baselines.parallel_probe",
    "cmc": "autotts_gym.baselines.cmc",
}

DISPLAY_NAMES = {
    "sc64": "SC@64",
    "asc": "ASC",
    "esc": "ESC",
    "parallel_probe": "Parallel-Probe",
    "cmc": "CMC",
}
