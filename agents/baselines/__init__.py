"""Baseline controllers of the AutoTTS paper's Table 1, written against the public
controller contract (``make_controller(beta)`` -> object with ``solve(session)``)."""

REGISTRY = {
    "sc64": "autotts_agents.baselines.sc",
    "asc": "autotts_agents.baselines.asc",
    "esc": "autotts_agents.baselines.esc",
    "parallel_probe": "autotts_agents.baselines.parallel_probe",
    "cmc": "autotts_agents.baselines.cmc",
}

DISPLAY_NAMES = {
    "sc64": "SC@64",
    "asc": "ASC",
    "esc": "ESC",
    "parallel_probe": "Parallel-Probe",
    "cmc": "CMC",
}
