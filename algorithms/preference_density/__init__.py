"""Learning from pairwise preferences as density estimation (Dumoulin et al. 2024, arXiv 2311.14115)."""
