"""Minigrid & Miniworld (Chevalier-Boisvert et al. 2023, arXiv 2306.13831): PPO on the JAX Minigrid and the
Minigrid → Miniworld agent-transfer case study."""
