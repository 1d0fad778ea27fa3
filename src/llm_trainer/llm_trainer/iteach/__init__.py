"""LLM-iTeach (arXiv 2504.21769): a sandboxed CodePolicy teaches an imitation-learning agent."""
