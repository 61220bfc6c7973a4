"""LLM-driven discovery of controllers: explorer, prompt, sandbox and loop (optional layer over autotts_gym)."""
