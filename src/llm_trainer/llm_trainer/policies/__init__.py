"""Learned policies on state and the LLM Trainer ensemble: a behaviour-cloning feedback controller
trained on generated demos, the feed-forward retargeted demo, and the switch between them."""
