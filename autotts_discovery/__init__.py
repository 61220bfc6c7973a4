"""LLM-driven discovery of controllers: explorer, prompt, sandbox and loop (an optional layer
over autotts_gym)."""
