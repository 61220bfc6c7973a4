"""Reinforcement learning on AutoTTS-v0 with stable-baselines3 (optional layer over autotts_gym)."""
